/*
 * libFuzzer harness for icap/src/icap_parser.cpp (pure functions of what an ICAP
 * server sends). Input: byte 0 picks the excerpt and URL lengths; the rest is an ICAP
 * response head, then, after its empty line, the encapsulated HTTP head; byte 0 also
 * stands for the returned body's size against the 64 bytes sent. Checks what
 * the plugin relies on: every name, detail and excerpt is printable 7-bit ASCII and
 * bounded, VIRUS_FOUND and IMPOSSIBLE carry a name, an escaped URL is URL-safe.
 */
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "icap_parser.h"

using namespace avicap;

static void check_printable(const std::string &s, std::size_t max)
{
    if (s.size() > max)
        std::abort();
    for (unsigned char c : s)
        if (c < 0x20 || c >= 0x7f)
            std::abort();
}

static void check_url_safe(const std::string &s, std::size_t max)
{
    if (s.size() > max)
        std::abort();
    for (unsigned char c : s) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_' || c == '~' || c == '%';
        if (!ok)
            std::abort();
    }
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    if (size == 0)
        return 0;
    std::size_t max = data[0];
    std::string_view text(reinterpret_cast<const char *>(data + 1), size - 1);
    std::size_t split = text.find("\r\n\r\n");
    std::string_view head = text.substr(0, split);
    std::string_view http = split == std::string_view::npos ? std::string_view()
                                                            : text.substr(split + 4);

    Response r;
    if (parse_response_head(head, r)) {
        check_printable(r.reason, kMaxHead + 3);
        /* byte 0: the returned body's size (0: none) against 64 bytes sent */
        Returned back{http_status(http), static_cast<long long>(max) - 1, 64};
        ScanVerdict v = response_verdict(r, back);
        switch (v.verdict) {
        case Verdict::Infected:
        case Verdict::Impossible:
            if (v.detail.empty())
                std::abort(); /* VIRUS_FOUND and IMPOSSIBLE carry the engine's name */
            break;
        case Verdict::Clean:
        case Verdict::Failed:
        case Verdict::Unexpected:
            break;
        default:
            std::abort();
        }
        check_printable(v.detail, kMaxHead + 3);
        ServiceOptions o;
        (void)parse_options(r, o);
        check_printable(o.service, kMaxHead + 3);
        (void)r.encapsulated.header_bytes();
        (void)r.header("X-Infection-Found");
    }

    Encapsulated e;
    (void)parse_encapsulated(head, e);
    std::uint64_t chunk = 0;
    (void)parse_chunk_size(head.substr(0, kMaxChunkLine + 8), chunk);
    (void)is_impossible_name(head);

    check_printable(sanitize_name(text), kMaxVirusName);
    check_printable(printable_excerpt(text, max), max + 3); /* room for an ellipsis */
    check_url_safe(url_escape(text, max), max);
    return 0;
}
