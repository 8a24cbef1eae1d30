#include "options.h"

#include "avPlugin.h"

namespace netplugin {

std::string read_option(const char *name)
{
    /* A field the product fills without a terminator still fits whole, with one. */
    char buf[sizeof(((avir_plugin_config *)nullptr)->value) + 1];
    avc_option(name, buf, sizeof buf);
    return buf;
}

bool parse_u64(const std::string &text, std::uint64_t &out)
{
    if (text.empty() || text.size() > 19)
        return false;
    std::uint64_t v = 0;
    for (char c : text) {
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    out = v;
    return true;
}

} // namespace netplugin
