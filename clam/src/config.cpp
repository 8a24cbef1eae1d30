#include "config.h"

#include <cerrno>
#include <cstdlib>

#include "discovery.h"
#include "options.h"

namespace avclam {

/*
 * Address, Port and StartupTimeout are what existing installations carry and
 * keep their old meaning; the rest are additions whose defaults behave like
 * the old plugin.
 *
 * MaxFileSize: a file larger than this is AVCHK_IMPOSSIBLE without being
 * sent. 0 (the default) leaves it to clamd's limits: with AlertExceedsMax yes
 * clamd reports a file over them; without it (clamd's default) clamd calls such
 * a file clean, so the plugin reports a file over clamd's MaxFileSize or
 * MaxScanSize (read from ClamdConf, else assumed 25M) as not scannable itself.
 *
 * ClamdConf: the clamd.conf that clamd runs with, read (when readable) for its
 * MaxFileSize and MaxScanSize; empty: the stock files that name the same
 * LocalSocket or TCPSocket (clamd_conf.h).
 *
 * FdPass: auto hands clamd the open file over a UNIX socket (FILDES) and
 * streams it over TCP or when clamd refuses descriptors; on insists (a
 * refused descriptor is a FAILED scan); off always streams.
 */
const avp_option kOptions[] = {
    {"Address", kDefaultAddress},
    {"Port", kDefaultPort},
    {"StartupTimeout", "90"},    /* seconds, clamped to 10..100 */
    {"LocalSocket", ""},         /* clamd's LocalSocket path; when set, used instead of TCP */
    {"ScanTimeout", "120"},      /* seconds: silence while sending, then verdict deadline; 5..3600 */
    {"ChunkSize", "65536"},      /* bytes per INSTREAM chunk; 4096..1048576 */
    {"MaxFileSize", "0"},        /* bytes; larger files are IMPOSSIBLE; 0 = clamd decides */
    {"KeepAliveInterval", "10"}, /* seconds between PINGs of an idle session; 0 = off */
    {"FdPass", "auto"},          /* auto | on | off: pass the open file over the UNIX socket */
    {"ClamdConf", ""},           /* clamd.conf to read clamd's size limits from; "" = stock */
};
const std::size_t kOptionCount = sizeof kOptions / sizeof kOptions[0];

namespace {

using netplugin::parse_u64;
using netplugin::read_option;

/* An option holds 127 characters: a pool's list that long was most likely cut. */
void warn_if_full(const char *name, const std::string &value)
{
    if (value.size() + 1 >= sizeof(((avir_plugin_config *)nullptr)->value))
        avc_log_warning("avir_clam: option %s is %u characters long, the most an option holds: "
                        "its end may have been cut off (\"%s\"); use shorter names or paths",
                        name, static_cast<unsigned>(value.size()), value.c_str());
}

} // namespace

std::string Config::where() const
{
    if (!local_socket.empty())
        return local_socket;
    if (address.find(':') != std::string::npos)
        return "[" + address + "]:" + port;
    return address + ":" + port;
}

bool load_config(Config &out, std::string &error)
{
    Config c;
    c.address = read_option("Address");
    if (c.address.size() > 1 && c.address.front() == '[' && c.address.back() == ']' &&
        c.address.find(',') == std::string::npos)
        c.address = c.address.substr(1, c.address.size() - 2); /* "[::1]" as people write it */
    c.local_socket = read_option("LocalSocket");
    warn_if_full("Address", c.address);
    warn_if_full("LocalSocket", c.local_socket);
    if (c.local_socket.empty() && c.address.empty()) {
        error = "option Address is empty and LocalSocket is not set: nowhere to find clamd";
        return false;
    }
    long port = avc_option_long("Port", -1, -1, 99999);
    if (c.local_socket.empty() && (port < 1 || port > 65535)) {
        error = "option Port=\"" + read_option("Port") + "\" is not a TCP port (1..65535)";
        return false;
    }
    c.port = std::to_string(port);
    c.discover = discovery_wanted(c.address, port, c.local_socket);
    c.startup_timeout = std::chrono::seconds(avc_option_long("StartupTimeout", 90, 10, 100));
    c.scan_timeout = std::chrono::seconds(avc_option_long("ScanTimeout", 120, 5, 3600));
    c.keepalive_interval = std::chrono::seconds(avc_option_long("KeepAliveInterval", 10, 0, 3600));
    c.chunk_size = static_cast<std::size_t>(avc_option_long("ChunkSize", 65536, 4096, 1048576));
    std::string max = read_option("MaxFileSize");
    if (!parse_u64(max, c.max_file_size)) {
        error = "option MaxFileSize=\"" + max + "\" is not a number of bytes (0 = no limit)";
        return false;
    }
    std::string fd_pass = read_option("FdPass");
    if (!parse_fd_pass(fd_pass, c.fd_pass)) {
        error = "option FdPass=\"" + fd_pass + "\" is not auto, on or off";
        return false;
    }
    c.clamd_conf = read_option("ClamdConf");
    out = c;
    return true;
}

} // namespace avclam
