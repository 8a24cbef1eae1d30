/*
 * Outside text (a server's reply, an option) made fit for a log line or a
 * result: 7-bit printable ASCII only, as the product requires, and short.
 * Header-only: the parsers that use it are also compiled alone, for their unit
 * tests and fuzzers.
 */
#ifndef NETPLUGIN_PRINTABLE_H
#define NETPLUGIN_PRINTABLE_H

#include <cstddef>
#include <string>
#include <string_view>

namespace netplugin {

/* `text` with every other byte as '?', cut after `max_len` bytes with "..." to say so. */
inline std::string printable_ascii(std::string_view text, std::size_t max_len)
{
    std::string out;
    for (unsigned char c : text) {
        if (out.size() >= max_len) {
            out += "...";
            break;
        }
        out += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '?';
    }
    return out;
}

} // namespace netplugin

#endif
