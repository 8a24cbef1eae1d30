#include "reply_parser.h"

#include "printable.h"

namespace avclam {
namespace {

constexpr std::string_view kStreamPrefix = "stream: ";
constexpr std::string_view kFoundSuffix = " FOUND";
constexpr std::string_view kErrorSuffix = " ERROR";

bool starts_with(std::string_view s, std::string_view p)
{
    return s.size() >= p.size() && s.compare(0, p.size(), p) == 0;
}

bool ends_with(std::string_view s, std::string_view p)
{
    return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

/* clamd ends a z-command reply with NUL, but a few of its messages use '\n'. */
std::string_view trim_terminators(std::string_view s)
{
    while (!s.empty() && (s.back() == '\0' || s.back() == '\n' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

/* Strips "<id>: " when it names request_id; false if the prefix is missing or names another one. */
bool strip_id(std::string_view &s, std::uint32_t request_id)
{
    std::size_t i = 0;
    std::uint64_t id = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i < 10) {
        id = id * 10 + static_cast<unsigned>(s[i] - '0');
        i++;
    }
    if (i == 0 || s.size() < i + 2 || s[i] != ':' || s[i + 1] != ' ' || id != request_id)
        return false;
    s.remove_prefix(i + 2);
    return true;
}

bool printable(std::string_view s)
{
    for (unsigned char c : s)
        if (c < 0x20 || c >= 0x7f)
            return false;
    return true;
}

/* With AlertExceedsMax, what clamd calls a file it did not scan to the end:
   "cannot tell", never "clean" (and not a virus to quarantine either). */
bool is_limit_name(std::string_view name)
{
    return starts_with(name, "Heuristics.Limits.Exceeded");
}

/* Strips FILDES's "fd[<digits>]: "; false if `s` does not start with it. */
bool strip_fd_prefix(std::string_view &s)
{
    constexpr std::string_view open = "fd[";
    if (!starts_with(s, open))
        return false;
    std::size_t i = open.size();
    while (i < s.size() && i < open.size() + 10 && s[i] >= '0' && s[i] <= '9')
        i++;
    if (i == open.size() || s.size() < i + 3 || s.compare(i, 3, "]: ") != 0)
        return false;
    s.remove_prefix(i + 3);
    return true;
}

/* Names the ABI maps to "cannot tell" rather than "infected". */
bool is_impossible_name(std::string_view name)
{
    return starts_with(name, "Encrypted") || starts_with(name, "Broken") ||
           starts_with(name, "Heuristics.Encrypted");
}

ScanReply unexpected(std::string_view line)
{
    ScanReply r;
    r.status = ScanStatus::Unexpected;
    r.detail = printable_excerpt(line);
    return r;
}

bool parse_number(std::string_view &s, unsigned &out)
{
    std::size_t i = 0;
    unsigned long v = 0;
    while (i < s.size() && i < 6 && s[i] >= '0' && s[i] <= '9') {
        v = v * 10 + static_cast<unsigned>(s[i] - '0');
        i++;
    }
    if (i == 0)
        return false;
    out = static_cast<unsigned>(v);
    s.remove_prefix(i);
    return true;
}

} // namespace

std::string printable_excerpt(std::string_view text, std::size_t max_len)
{
    return netplugin::printable_ascii(trim_terminators(text), max_len);
}

ScanReply parse_scan_reply(std::string_view line, std::uint32_t request_id)
{
    std::string_view s = trim_terminators(line);
    if (s.size() > kMaxReplyLine || !strip_id(s, request_id))
        return unexpected(line);
    /* "INSTREAM size limit exceeded. ERROR" has no "stream: " prefix; other errors may. */
    std::string_view body = s;
    bool named = false; /* the reply names what was scanned: "stream: " or "fd[7]: " */
    if (starts_with(body, kStreamPrefix)) {
        body.remove_prefix(kStreamPrefix.size());
        named = true;
    } else {
        named = strip_fd_prefix(body);
    }
    if (named && body == "OK")
        return {ScanStatus::Clean, ""};
    if (named && ends_with(body, kFoundSuffix)) {
        std::string_view name = body.substr(0, body.size() - kFoundSuffix.size());
        if (name.empty() || !printable(name) || name.find(' ') != std::string_view::npos)
            return unexpected(line);
        if (is_limit_name(name))
            return {ScanStatus::OverLimit, std::string(name)};
        return {is_impossible_name(name) ? ScanStatus::Impossible : ScanStatus::Infected,
                std::string(name)};
    }
    if (ends_with(body, kErrorSuffix)) {
        std::string_view text = body.substr(0, body.size() - kErrorSuffix.size());
        if (text.empty())
            return unexpected(line);
        /* Over StreamMaxLength is a limit, not a failure: the ABI wants "cannot tell". */
        bool limit = text.find("size limit exceeded") != std::string_view::npos;
        return {limit ? ScanStatus::OverLimit : ScanStatus::Failed, printable_excerpt(text, 200)};
    }
    return unexpected(line);
}

bool fildes_refused(std::string_view line)
{
    std::string_view s = trim_terminators(line);
    if (s.size() > kMaxReplyLine)
        return false;
    for (std::string_view refusal : {"No file descriptor received", "didn't receive file descriptor",
                                     "UNKNOWN COMMAND", "Command invalid inside IDSESSION"})
        if (s.find(refusal) != std::string_view::npos)
            return true;
    return false;
}

bool is_pong(std::string_view line, std::uint32_t request_id)
{
    std::string_view s = trim_terminators(line);
    return strip_id(s, request_id) && s == "PONG";
}

bool parse_version(std::string_view line, std::uint32_t request_id, ClamdVersion &out)
{
    std::string_view s = trim_terminators(line);
    if (s.size() > kMaxReplyLine)
        return false;
    if (request_id != 0 && !strip_id(s, request_id))
        return false;
    out = ClamdVersion{};
    out.text = printable_excerpt(s, 120);
    constexpr std::string_view prefix = "ClamAV ";
    if (!starts_with(s, prefix))
        return false;
    s.remove_prefix(prefix.size());
    if (!parse_number(s, out.major) || s.empty() || s[0] != '.')
        return false;
    s.remove_prefix(1);
    if (!parse_number(s, out.minor))
        return false;
    if (!s.empty() && s[0] == '.') {
        s.remove_prefix(1);
        if (!parse_number(s, out.patch))
            out.patch = 0;
    }
    return true;
}

bool version_supported(const ClamdVersion &v)
{
    return v.major > 0 || v.minor >= 95;
}

} // namespace avclam
