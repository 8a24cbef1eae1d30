/*
 * Reading the plugin's options (avCommon.h's avc_option) the same way in both
 * plugins: a value is never longer than the product's field, a number never
 * anything but digits.
 */
#ifndef NETPLUGIN_OPTIONS_H
#define NETPLUGIN_OPTIONS_H

#include <cstdint>
#include <string>

namespace netplugin {

/* The value of option `name` as the product set it (or its default). */
std::string read_option(const char *name);

/* A decimal count of bytes, up to 2^63; false if anything else is in the text. */
bool parse_u64(const std::string &text, std::uint64_t &out);

} // namespace netplugin

#endif
