/*
 * libFuzzer harness for clam/src/reply_parser.cpp (a pure function of clamd's reply).
 * Input: byte 0 picks the request id (0..7, so that matching ids are common), the
 * rest is the reply line without its NUL. Checks what the callers rely on: every
 * detail and excerpt is printable 7-bit ASCII and bounded.
 */
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "reply_parser.h"

using namespace avclam;

static void check_printable(const std::string &s, std::size_t max)
{
    if (s.size() > max)
        std::abort();
    for (unsigned char c : s)
        if (c < 0x20 || c >= 0x7f)
            std::abort();
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
    if (size == 0)
        return 0;
    std::uint32_t id = data[0] & 7;
    std::string_view line(reinterpret_cast<const char *>(data + 1), size - 1);

    ScanReply r = parse_scan_reply(line, id);
    switch (r.status) {
    case ScanStatus::Clean:
    case ScanStatus::Infected:
    case ScanStatus::Impossible:
    case ScanStatus::OverLimit:
    case ScanStatus::Failed:
    case ScanStatus::Unexpected:
        break;
    default:
        std::abort();
    }
    if (r.status == ScanStatus::Infected && r.detail.empty())
        std::abort(); /* VIRUS_FOUND must carry a name */
    check_printable(r.detail, kMaxReplyLine);

    (void)is_pong(line, id);
    (void)fildes_refused(line);

    ClamdVersion v;
    if (parse_version(line, id, v))
        check_printable(v.text, 1024);
    (void)version_supported(v);

    std::size_t max = data[0] >> 3;
    check_printable(printable_excerpt(line, max), max + 3); /* room for an ellipsis */
    return 0;
}
