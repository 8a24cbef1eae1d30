/*
 * Parsing of ICAP (RFC 3507) responses: pure functions of the text, no I/O, no
 * globals, so they are unit-tested on the build machine (icap/tests/).
 *
 * Everything a server sends is untrusted: the functions accept any bytes, never
 * read past the view they are given and never use the text as a format.
 */
#ifndef AVIR_ICAP_PARSER_H
#define AVIR_ICAP_PARSER_H

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace avicap {

/* Longest ICAP response head (status line and headers) we accept. */
constexpr std::size_t kMaxHead = 64 * 1024;
/* Longest chunk-size line of a chunked body. */
constexpr std::size_t kMaxChunkLine = 1024;
/* Most trailer lines after a chunked body (c-icap sends none). */
constexpr int kMaxTrailerLines = 64;
/* Longest virus name kept; the ABI's buffer (512 bytes) cuts it further. */
constexpr std::size_t kMaxVirusName = 255;

/* Offsets of the Encapsulated header (-1: that part is absent). */
struct Encapsulated {
    long long req_hdr = -1;
    long long res_hdr = -1;
    long long req_body = -1;
    long long res_body = -1;
    long long null_body = -1;
    long long opt_body = -1;
    /* Bytes of HTTP headers before the body part (res_body, null_body...). */
    long long header_bytes() const;
    bool has_body() const { return req_body >= 0 || res_body >= 0 || opt_body >= 0; }
};

struct Response {
    int status = 0;     /* 100, 200, 204, 404, 500... */
    std::string reason; /* printable excerpt */
    /* Header names as sent (compared case-insensitively), values unfolded and trimmed. */
    std::vector<std::pair<std::string, std::string>> headers;
    Encapsulated encapsulated;
    bool close = false; /* "Connection: close": the server ends the connection */

    /* The first header of that name (case-insensitive), or nullptr. */
    const std::string *header(std::string_view name) const;
};

/*
 * The head of an ICAP response: "ICAP/1.0 <code> <reason>" and its headers,
 * up to and without the empty line. Folded header lines (starting with a blank)
 * continue the previous value, joined with "\n". False when it is not ICAP.
 */
bool parse_response_head(std::string_view head, Response &out);

/* The Encapsulated header's value: "res-hdr=0, res-body=161". False on nonsense. */
bool parse_encapsulated(std::string_view value, Encapsulated &out);

/* What an OPTIONS response says about the service. */
struct ServiceOptions {
    bool respmod = false; /* Methods lists RESPMOD */
    bool reqmod = false;
    long preview = -1;      /* Preview: bytes; -1 when absent (no preview) */
    bool allow_204 = false; /* Allow: 204 */
    std::string service;    /* Service: printable excerpt, for the log */
    std::string istag;
};

/* False when the response is not a 200 to OPTIONS; `out` holds what was read. */
bool parse_options(const Response &r, ServiceOptions &out);

/* "HTTP/1.1 403 Forbidden\r\n..." -> 403; 0 when not an HTTP status line. */
int http_status(std::string_view http_head);

/* A chunk-size line without its CRLF ("1a2b;ext"): false when it is not hex or too large. */
bool parse_chunk_size(std::string_view line, std::uint64_t &size);

enum class Verdict {
    Clean,      /* 204, or 200 with an unblocked, unflagged content */
    Infected,   /* detail: the virus name */
    Impossible, /* encrypted, broken or over a limit of the engine: detail its name */
    Failed,     /* the server could not scan (ICAP error status): detail says what */
    Unexpected, /* not an answer to a RESPMOD: detail is a printable excerpt */
};

struct ScanVerdict {
    Verdict verdict = Verdict::Unexpected;
    std::string detail;
};

/* What a final RESPMOD response carried besides its ICAP head. */
struct Returned {
    int http = 0;              /* the encapsulated HTTP status; 0 when none or unreadable */
    long long body_bytes = -1; /* bytes of the encapsulated body; -1 when it had none */
    std::uint64_t sent = 0;    /* bytes of the file the plugin sent (the content to return) */
};

/*
 * The verdict of a final RESPMOD response `r`. Never Clean for an answer the
 * plugin cannot read or that contradicts itself:
 *  - an infection header wins whatever the status: X-Infection-Found (its
 *    Threat=), X-Virus-ID, X-Violations-Found (the threat line of its first
 *    violation; a count that is not a number, or 0 followed by violations, is
 *    a threat without a name: the server said something was found);
 *  - 204 is Clean, unless it carries a content (a contradiction: Unexpected);
 *  - ICAP 4xx/5xx Failed, any other status but 200 Unexpected;
 *  - 200: a blocked content (an HTTP status that is not 2xx) is a virus without
 *    a name; an unreadable HTTP head is Unexpected; a 2xx content is Clean only
 *    when it came back whole (as many bytes as were sent): one cut short or
 *    removed without a word is how c-icap's virus_scan blocks a file it had
 *    begun to pass (SendPercentData), so it is a virus without a name.
 */
ScanVerdict response_verdict(const Response &r, const Returned &back);

/* The names the ABI calls "cannot tell" (encrypted, broken, over a limit). */
bool is_impossible_name(std::string_view name);

/* A virus name reduced to printable 7-bit ASCII without blanks around, at most kMaxVirusName. */
std::string sanitize_name(std::string_view name);

/* A short printable rendering of untrusted text, for error messages. */
std::string printable_excerpt(std::string_view text, std::size_t max_len = 80);

/* "%2F"-style escaping of a file name for the request URL c-icap logs. */
std::string url_escape(std::string_view text, std::size_t max_len = 200);

} // namespace avicap

#endif
