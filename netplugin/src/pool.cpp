#include "pool.h"

namespace netplugin {

namespace {

std::string trimmed(const std::string &s)
{
    const char *space = " \t";
    std::size_t b = s.find_first_not_of(space);
    if (b == std::string::npos)
        return "";
    std::size_t e = s.find_last_not_of(space);
    return s.substr(b, e - b + 1);
}

bool valid_port(const std::string &p)
{
    if (p.empty() || p.size() > 5)
        return false;
    long v = 0;
    for (char c : p) {
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    return v >= 1 && v <= 65535;
}

} // namespace

std::vector<std::string> split_list(const std::string &text)
{
    std::vector<std::string> out;
    std::size_t start = 0;
    for (;;) {
        std::size_t comma = text.find(',', start);
        std::string entry = trimmed(text.substr(start, comma == std::string::npos
                                                           ? std::string::npos
                                                           : comma - start));
        if (!entry.empty())
            out.push_back(entry);
        if (comma == std::string::npos)
            return out;
        start = comma + 1;
    }
}

bool parse_endpoint(const std::string &entry, Endpoint &out)
{
    Endpoint e;
    if (entry.empty())
        return false;
    if (entry.front() == '[') {
        std::size_t close = entry.find(']');
        if (close == std::string::npos || close == 1)
            return false;
        e.host = entry.substr(1, close - 1);
        std::string rest = entry.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':' || !valid_port(rest.substr(1)))
                return false;
            e.port = rest.substr(1);
        }
    } else {
        std::size_t colon = entry.find(':');
        if (colon != std::string::npos && entry.find(':', colon + 1) == std::string::npos) {
            e.host = entry.substr(0, colon);
            e.port = entry.substr(colon + 1);
            if (e.host.empty() || !valid_port(e.port))
                return false;
        } else {
            e.host = entry; /* a name, IPv4, or a bare IPv6 literal (two colons or more) */
        }
    }
    if (e.host.find_first_of(" \t[]") != std::string::npos)
        return false;
    out = e;
    return true;
}

std::vector<std::size_t> Health::candidates()
{
    std::lock_guard<std::mutex> lock(mutex_);
    const std::size_t n = state_.size();
    if (n <= 1)
        return std::vector<std::size_t>(n, 0);
    std::vector<std::size_t> out;
    const std::size_t start = turn_++ % n;
    for (std::size_t k = 0; k < n; k++) {
        std::size_t i = (start + k) % n;
        if (!state_[i].down)
            out.push_back(i);
    }
    return out;
}

bool Health::failed(std::size_t i, Clock::time_point now, const std::string &why)
{
    std::lock_guard<std::mutex> lock(mutex_);
    if (state_.size() <= 1 || i >= state_.size())
        return false;
    State &s = state_[i];
    const bool was_up = !s.down;
    if (was_up)
        s.next_probe = now + kProbeEvery;
    s.down = true;
    s.why = why;
    return was_up;
}

bool Health::answered(std::size_t i)
{
    std::lock_guard<std::mutex> lock(mutex_);
    if (i >= state_.size())
        return false;
    const bool was_down = state_[i].down;
    state_[i] = State{};
    return was_down;
}

std::vector<std::size_t> Health::due_for_probe(Clock::time_point now)
{
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < state_.size(); i++) {
        State &s = state_[i];
        if (s.down && now >= s.next_probe) {
            out.push_back(i);
            s.next_probe = now + kProbeEvery;
        }
    }
    return out;
}

bool Health::is_down(std::size_t i) const
{
    std::lock_guard<std::mutex> lock(mutex_);
    return i < state_.size() && state_[i].down;
}

std::string Health::why(std::size_t i) const
{
    std::lock_guard<std::mutex> lock(mutex_);
    return i < state_.size() ? state_[i].why : std::string();
}

} // namespace netplugin
