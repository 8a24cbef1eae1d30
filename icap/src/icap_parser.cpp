#include "icap_parser.h"

#include "printable.h"

namespace avicap {
namespace {

char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b)
{
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); i++)
        if (lower(a[i]) != lower(b[i]))
            return false;
    return true;
}

bool istarts_with(std::string_view s, std::string_view p)
{
    return s.size() >= p.size() && iequals(s.substr(0, p.size()), p);
}

bool starts_with(std::string_view s, std::string_view p)
{
    return s.size() >= p.size() && s.compare(0, p.size(), p) == 0;
}

std::string_view trim(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n'))
        s.remove_suffix(1);
    return s;
}

/* The next line of `s` without its CRLF (or LF); `s` moves past it. */
std::string_view next_line(std::string_view &s)
{
    std::size_t end = s.find('\n');
    std::string_view line = end == std::string_view::npos ? s : s.substr(0, end);
    s.remove_prefix(end == std::string_view::npos ? s.size() : end + 1);
    if (!line.empty() && line.back() == '\r')
        line.remove_suffix(1);
    return line;
}

/* A decimal number of at most 12 digits (ICAP offsets and sizes). */
bool parse_decimal(std::string_view s, long long &out)
{
    if (s.empty() || s.size() > 12)
        return false;
    long long v = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    out = v;
    return true;
}

bool valid_token(std::string_view name)
{
    if (name.empty())
        return false;
    for (unsigned char c : name)
        if (c <= 0x20 || c >= 0x7f || c == ':')
            return false;
    return true;
}

/* Lists like "RESPMOD, REQMOD" or "204, 206": true when `item` is one of them. */
bool list_has(std::string_view list, std::string_view item)
{
    while (!list.empty()) {
        std::size_t comma = list.find(',');
        std::string_view part = trim(list.substr(0, comma));
        if (iequals(part, item))
            return true;
        list.remove_prefix(comma == std::string_view::npos ? list.size() : comma + 1);
    }
    return false;
}

/* "Type=0; Resolution=2; Threat=Name;" -> "Name" (keys case-insensitive). */
std::string_view infection_threat(std::string_view value)
{
    while (!value.empty()) {
        std::size_t semi = value.find(';');
        std::string_view part = trim(value.substr(0, semi));
        if (istarts_with(part, "threat="))
            return trim(part.substr(7));
        value.remove_prefix(semi == std::string_view::npos ? value.size() : semi + 1);
    }
    return {};
}

/* How an X-Violations-Found value reads. */
struct Violations {
    enum class Form { None,
                      Found,
                      Unreadable } form = Form::Unreadable;
    std::string_view threat; /* Found: the first violation's threat line (may be empty) */
};

/*
 * "1\n<file>\n<threat>\n<id>\n<resolution>" (unfolded). "0" alone is None; a count
 * that is not a decimal number ("abc", "-1", "") or "0" followed by violations is
 * Unreadable: the header is there, so the server reports something.
 */
Violations read_violations(std::string_view value)
{
    std::string_view rest = value;
    long long count = 0;
    Violations v;
    if (!parse_decimal(trim(next_line(rest)), count))
        return v;
    if (count == 0) {
        if (trim(rest).empty())
            v.form = Violations::Form::None;
        return v;
    }
    next_line(rest); /* the file name */
    v.form = Violations::Form::Found;
    v.threat = trim(next_line(rest));
    return v;
}

ScanVerdict named(std::string_view raw, std::string_view fallback)
{
    std::string name = sanitize_name(raw);
    if (name.empty())
        name = std::string(fallback);
    return {is_impossible_name(name) ? Verdict::Impossible : Verdict::Infected, name};
}

} // namespace

long long Encapsulated::header_bytes() const
{
    long long body = res_body >= 0   ? res_body
                     : req_body >= 0 ? req_body
                     : opt_body >= 0 ? opt_body
                                     : null_body;
    return body < 0 ? 0 : body;
}

const std::string *Response::header(std::string_view name) const
{
    for (const auto &h : headers)
        if (iequals(h.first, name))
            return &h.second;
    return nullptr;
}

std::string printable_excerpt(std::string_view text, std::size_t max_len)
{
    return netplugin::printable_ascii(trim(text), max_len);
}

std::string sanitize_name(std::string_view name)
{
    std::string out;
    for (unsigned char c : trim(name)) {
        if (out.size() >= kMaxVirusName)
            break;
        out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
    }
    while (!out.empty() && out.back() == ' ')
        out.pop_back();
    return out;
}

std::string url_escape(std::string_view text, std::size_t max_len)
{
    static const char hex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (out.size() + 3 > max_len)
            break;
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '.' || c == '_' || c == '~';
        if (plain) {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

bool parse_encapsulated(std::string_view value, Encapsulated &out)
{
    Encapsulated e;
    bool any = false;
    while (!value.empty()) {
        std::size_t comma = value.find(',');
        std::string_view part = trim(value.substr(0, comma));
        value.remove_prefix(comma == std::string_view::npos ? value.size() : comma + 1);
        std::size_t eq = part.find('=');
        if (eq == std::string_view::npos)
            return false;
        std::string_view key = trim(part.substr(0, eq));
        long long offset = 0;
        if (!parse_decimal(trim(part.substr(eq + 1)), offset))
            return false;
        long long *slot = iequals(key, "req-hdr")     ? &e.req_hdr
                          : iequals(key, "res-hdr")   ? &e.res_hdr
                          : iequals(key, "req-body")  ? &e.req_body
                          : iequals(key, "res-body")  ? &e.res_body
                          : iequals(key, "null-body") ? &e.null_body
                          : iequals(key, "opt-body")  ? &e.opt_body
                                                      : nullptr;
        if (!slot || *slot >= 0)
            return false; /* unknown or repeated part */
        *slot = offset;
        any = true;
    }
    if (!any)
        return false;
    /* At most one body part, and headers before it. */
    int bodies = (e.req_body >= 0) + (e.res_body >= 0) + (e.null_body >= 0) + (e.opt_body >= 0);
    if (bodies > 1)
        return false;
    long long body = e.header_bytes();
    if ((e.req_hdr >= 0 && e.req_hdr > body && bodies) || (e.res_hdr >= 0 && e.res_hdr > body && bodies))
        return false;
    out = e;
    return true;
}

bool parse_response_head(std::string_view head, Response &out)
{
    if (head.size() > kMaxHead)
        return false;
    Response r;
    std::string_view rest = head;
    std::string_view status = next_line(rest);
    if (!starts_with(status, "ICAP/1.") || status.size() < 12 || status[8] != ' ')
        return false;
    long long code = 0;
    if (!parse_decimal(status.substr(9, 3), code) || code < 100 || code > 599)
        return false;
    if (status.size() > 12 && status[12] != ' ')
        return false;
    r.status = static_cast<int>(code);
    r.reason = printable_excerpt(status.size() > 13 ? status.substr(13) : std::string_view(), 60);
    while (!rest.empty()) {
        std::string_view line = next_line(rest);
        if (line.empty())
            break; /* the end of the head, if the caller left it in */
        if (line.front() == ' ' || line.front() == '\t') {
            if (r.headers.empty())
                return false; /* a continuation of nothing */
            r.headers.back().second += "\n" + std::string(trim(line));
            continue;
        }
        std::size_t colon = line.find(':');
        if (colon == std::string_view::npos || !valid_token(line.substr(0, colon)))
            return false;
        r.headers.emplace_back(std::string(line.substr(0, colon)),
                               std::string(trim(line.substr(colon + 1))));
    }
    if (const std::string *enc = r.header("Encapsulated")) {
        if (!parse_encapsulated(*enc, r.encapsulated))
            return false;
    }
    if (const std::string *conn = r.header("Connection"))
        r.close = list_has(*conn, "close");
    out = std::move(r);
    return true;
}

bool parse_options(const Response &r, ServiceOptions &out)
{
    out = ServiceOptions{};
    if (const std::string *methods = r.header("Methods")) {
        out.respmod = list_has(*methods, "RESPMOD");
        out.reqmod = list_has(*methods, "REQMOD");
    }
    if (const std::string *preview = r.header("Preview")) {
        long long n = 0;
        if (parse_decimal(trim(*preview), n) && n <= 1024 * 1024)
            out.preview = static_cast<long>(n);
    }
    if (const std::string *allow = r.header("Allow"))
        out.allow_204 = list_has(*allow, "204");
    if (const std::string *service = r.header("Service"))
        out.service = printable_excerpt(*service, 120);
    if (const std::string *istag = r.header("ISTag"))
        out.istag = printable_excerpt(*istag, 40);
    return r.status == 200;
}

int http_status(std::string_view http_head)
{
    std::string_view rest = http_head;
    std::string_view line = next_line(rest);
    if (!starts_with(line, "HTTP/") || line.size() < 12)
        return 0;
    std::size_t space = line.find(' ');
    if (space == std::string_view::npos || line.size() < space + 4)
        return 0;
    long long code = 0;
    if (!parse_decimal(line.substr(space + 1, 3), code) || code < 100 || code > 599)
        return 0;
    if (line.size() > space + 4 && line[space + 4] != ' ')
        return 0;
    return static_cast<int>(code);
}

bool parse_chunk_size(std::string_view line, std::uint64_t &size)
{
    std::size_t semi = line.find(';');
    std::string_view digits = trim(line.substr(0, semi));
    if (digits.empty() || digits.size() > 15)
        return false;
    std::uint64_t v = 0;
    for (char c : digits) {
        int d = (c >= '0' && c <= '9')   ? c - '0'
                : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                : (c >= 'A' && c <= 'F') ? c - 'A' + 10
                                         : -1;
        if (d < 0)
            return false;
        v = v * 16 + static_cast<unsigned>(d);
    }
    size = v;
    return true;
}

bool is_impossible_name(std::string_view name)
{
    return starts_with(name, "Encrypted") || starts_with(name, "Broken") ||
           starts_with(name, "Heuristics.Encrypted") || starts_with(name, "Heuristics.Limits.Exceeded");
}

namespace {

/* The threat an infection header names, if the response carries one. */
bool infection_header(const Response &r, ScanVerdict &out)
{
    if (const std::string *v = r.header("X-Infection-Found")) {
        out = named(infection_threat(*v), "unnamed threat (X-Infection-Found)");
        return true;
    }
    if (const std::string *v = r.header("X-Virus-ID")) {
        out = named(*v, "unnamed threat (X-Virus-ID)");
        return true;
    }
    if (const std::string *v = r.header("X-Violations-Found")) {
        Violations found = read_violations(*v);
        if (found.form == Violations::Form::Found) {
            out = named(found.threat, "unnamed threat (X-Violations-Found)");
            return true;
        }
        if (found.form == Violations::Form::Unreadable) {
            std::string lines = *v; /* its folded lines, joined by blanks */
            for (char &c : lines)
                if (c == '\n')
                    c = ' ';
            out = {Verdict::Infected, "unnamed threat (unreadable X-Violations-Found: \"" +
                                          printable_excerpt(lines, 40) + "\")"};
            return true;
        }
    }
    return false;
}

/* A 200 whose content is not blocked: clean only when it came back whole. */
ScanVerdict returned_content(const Returned &back)
{
    if (back.body_bytes < 0 && back.sent > 0)
        return {Verdict::Infected, "content removed by the ICAP server (HTTP " +
                                       std::to_string(back.http) + " without a body)"};
    if (back.body_bytes >= 0 && static_cast<std::uint64_t>(back.body_bytes) != back.sent)
        return {Verdict::Infected, "content changed by the ICAP server (" +
                                       std::to_string(back.body_bytes) + " of " +
                                       std::to_string(back.sent) + " bytes returned)"};
    return {Verdict::Clean, ""};
}

} // namespace

ScanVerdict response_verdict(const Response &r, const Returned &back)
{
    if (r.status == 100)
        return {Verdict::Unexpected, "ICAP 100 " + r.reason};
    ScanVerdict found;
    if (infection_header(r, found))
        return found;
    if (r.status == 204) {
        if (r.encapsulated.has_body() || r.encapsulated.res_hdr >= 0)
            return {Verdict::Unexpected, "ICAP 204 (no modification) with a content"};
        return {Verdict::Clean, ""};
    }
    if (r.status >= 400) {
        return {Verdict::Failed, "ICAP " + std::to_string(r.status) +
                                     (r.reason.empty() ? std::string() : " " + r.reason)};
    }
    if (r.status != 200)
        return {Verdict::Unexpected, "ICAP " + std::to_string(r.status) + " " + r.reason};
    if (r.encapsulated.res_hdr < 0)
        return {Verdict::Unexpected, "ICAP 200 without an HTTP response"};
    if (back.http == 0)
        return {Verdict::Unexpected, "ICAP 200 with an unreadable HTTP status line"};
    if (back.http < 200 || back.http > 299)
        return {Verdict::Infected, "blocked by the ICAP server (HTTP " + std::to_string(back.http) + ")"};
    return returned_content(back);
}

} // namespace avicap
