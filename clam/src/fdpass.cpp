#include "fdpass.h"

#include <cctype>

namespace avclam {

namespace {

bool equals_ignoring_case(std::string_view a, std::string_view b)
{
    if (a.size() != b.size())
        return false;
    for (std::size_t i = 0; i < a.size(); i++)
        if (std::tolower(static_cast<unsigned char>(a[i])) != b[i])
            return false;
    return true;
}

} // namespace

bool parse_fd_pass(std::string_view text, FdPass &out)
{
    if (equals_ignoring_case(text, "auto"))
        out = FdPass::Auto;
    else if (equals_ignoring_case(text, "on"))
        out = FdPass::On;
    else if (equals_ignoring_case(text, "off"))
        out = FdPass::Off;
    else
        return false;
    return true;
}

const char *fd_pass_name(FdPass mode)
{
    switch (mode) {
    case FdPass::On:
        return "on";
    case FdPass::Off:
        return "off";
    case FdPass::Auto:
        break;
    }
    return "auto";
}

ScanMethod choose_method(FdPass mode, bool unix_socket, bool refused)
{
    if (mode == FdPass::Off || !unix_socket)
        return ScanMethod::Instream;
    if (mode == FdPass::Auto && refused)
        return ScanMethod::Instream;
    return ScanMethod::Fildes;
}

const char *fd_pass_conflict(FdPass mode, bool unix_socket)
{
    if (mode == FdPass::On && !unix_socket)
        return "FdPass=on needs clamd's UNIX socket (LocalSocket): over TCP clamd cannot "
               "receive the file's descriptor; set LocalSocket, or FdPass=auto to stream "
               "over TCP";
    return "";
}

} // namespace avclam
