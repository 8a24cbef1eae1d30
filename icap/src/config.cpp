#include "config.h"

#include "options.h"

namespace avicap {

/*
 * Named as ICAP clients (Squid's icap_service, c-icap-client) name them; the
 * defaults reach Debian's c-icap with virus_scan on this machine. The service is
 * virus_scan asked with what its `avscan` alias has (204 answers allowed, no size
 * limit of its own) and force=on: Debian's stock virus_scan.ScanFileTypes leaves
 * out PDFs, PNGs, MP3s..., which it answers 204 unscanned, indistinguishable from
 * clean; forced, every type reaches the engine.
 */
const avp_option kOptions[] = {
    {"Server", "127.0.0.1"}, /* ICAP server: host name, IPv4 or IPv6 address */
    {"Port", "1344"},        /* ICAP's registered port */
    /* the service path: icap://Server:Port/Service */
    {"Service", "virus_scan?allow204=on&sizelimit=off&mode=simple&force=on"},
    {"PreviewSize", ""},      /* bytes; empty = the server's OPTIONS Preview */
    {"ConnectTimeout", "10"}, /* seconds per connection attempt; 1..60 */
    {"StartupTimeout", "90"}, /* seconds plugin_init waits for the server; 1..300 */
    {"ScanTimeout", "120"},   /* seconds: silence while sending, then response deadline; 5..3600 */
    {"MaxFileSize", "0"},     /* bytes; larger files are IMPOSSIBLE unsent; 0 = the server decides */
    /* bytes (K, M, G suffixes) the service scans at most: a "clean" answer for a larger
       file is IMPOSSIBLE; 0 = no limit; auto = c-icap's and clamd's stock limits */
    {"ServiceMaxSize", "auto"},
};
const std::size_t kOptionCount = sizeof kOptions / sizeof kOptions[0];

namespace {

using netplugin::parse_u64;
using netplugin::read_option;

/* A service path: printable, no blanks; a leading '/' is dropped. */
bool valid_service(std::string &service)
{
    while (!service.empty() && service.front() == '/')
        service.erase(0, 1);
    if (service.empty())
        return false;
    for (unsigned char c : service)
        if (c <= 0x20 || c >= 0x7f)
            return false;
    return true;
}

/* c-icap's virus_scan.MaxObjectSize as Debian's virus_scan.conf (and c-icap's default) sets it. */
constexpr std::uint64_t kCicapStockMaxObjectSize = 5ull * 1024 * 1024;
/* clamd's MaxFileSize as Debian's clamd.conf sets it (with AlertExceedsMax no). */
constexpr std::uint64_t kClamdStockMaxFileSize = 25ull * 1024 * 1024;

/* "5M", "700K", "1G", "123456": bytes, as c-icap writes sizes (K = 1024). */
bool parse_size(const std::string &text, std::uint64_t &out)
{
    if (text.empty())
        return false;
    std::uint64_t unit = 1;
    std::string digits = text;
    switch (text.back()) {
    case 'K':
    case 'k':
        unit = 1024;
        break;
    case 'M':
    case 'm':
        unit = 1024 * 1024;
        break;
    case 'G':
    case 'g':
        unit = 1024 * 1024 * 1024;
        break;
    default:
        break;
    }
    if (unit != 1)
        digits.pop_back();
    std::uint64_t n = 0;
    if (!parse_u64(digits, n) || n > UINT64_MAX / unit)
        return false;
    out = n * unit;
    return true;
}

bool load_scan_limit(std::uint64_t &limit, std::string &source, std::string &error)
{
    const std::string value = read_option("ServiceMaxSize");
    if (value.empty() || value == "auto") {
        limit = 0;
        source = kAutoScanLimit; /* decided when OPTIONS says what the server is */
        return true;
    }
    if (!parse_size(value, limit)) {
        error = "option ServiceMaxSize=\"" + printable_excerpt(value) +
                "\" is not a size (bytes, or with K, M or G: 5M; 0 = no limit; auto)";
        return false;
    }
    source = "ServiceMaxSize=" + value;
    return true;
}

} // namespace

/*
 * ServiceMaxSize=auto. c-icap's virus_scan (and Debian's srv_clamav alias of it)
 * answers 204 for an object over its MaxObjectSize (5M) without scanning it; its
 * avscan alias and any virus_scan asked with sizelimit=off hand every file to the
 * engine, and the engine behind c-icap, clamd as Debian configures it, reports a
 * file over MaxFileSize (25M) as clean. Nothing in OPTIONS or in the answer says
 * so, hence the stock values; other servers have no limit we know of.
 */
void decide_auto_scan_limit(Server &server)
{
    if (server.scan_limit_source != kAutoScanLimit)
        return;
    const std::string path = server.service.substr(0, server.service.find('?'));
    const bool size_limit_off = server.service.find("sizelimit=off") != std::string::npos;
    const bool cicap_antivirus = server.options.service.rfind("C-ICAP/", 0) == 0 &&
                                 server.options.service.find("Antivirus") != std::string::npos;
    if ((path == "virus_scan" || path == "srv_clamav") && !size_limit_off) {
        server.scan_limit = kCicapStockMaxObjectSize;
        server.scan_limit_source = std::string(kAutoScanLimit) +
                                   ": c-icap's virus_scan.MaxObjectSize, 5M as Debian ships it; "
                                   "its avscan alias has no size limit";
    } else if (cicap_antivirus) {
        server.scan_limit = kClamdStockMaxFileSize;
        server.scan_limit_source = std::string(kAutoScanLimit) +
                                   ": clamd's MaxFileSize behind c-icap, 25M as Debian ships it, "
                                   "passed as clean without AlertExceedsMax";
    } else {
        server.scan_limit = 0;
        server.scan_limit_source = std::string(kAutoScanLimit) + ": no limit known for this server";
    }
}

std::string Server::authority() const
{
    if (host.find(':') != std::string::npos)
        return "[" + host + "]:" + port;
    return host + ":" + port;
}

std::string Server::uri() const
{
    return "icap://" + authority() + "/" + service;
}

bool load_config(Config &out, std::string &error)
{
    Config c;
    Server s;
    const std::string hosts = read_option("Server");
    const std::vector<std::string> entries = netplugin::split_list(hosts);
    if (entries.empty()) {
        error = "option Server is empty: set the ICAP server's host name or address";
        return false;
    }
    if (hosts.size() + 1 >= sizeof(((avir_plugin_config *)nullptr)->value))
        avc_log_warning("avir_icap: option Server is %u characters long, the most an option "
                        "holds: its end may have been cut off (\"%s\")",
                        static_cast<unsigned>(hosts.size()), hosts.c_str());
    long port = avc_option_long("Port", -1, -1, 99999);
    if (port < 1 || port > 65535) {
        error = "option Port=\"" + read_option("Port") + "\" is not a TCP port (1..65535)";
        return false;
    }
    s.port = std::to_string(port);
    s.service = read_option("Service");
    if (!valid_service(s.service)) {
        error = "option Service=\"" + printable_excerpt(read_option("Service")) +
                "\" is not an ICAP service path (for c-icap's virus_scan: avscan)";
        return false;
    }
    if (!load_scan_limit(s.scan_limit, s.scan_limit_source, error))
        return false;
    std::string preview = read_option("PreviewSize");
    if (!preview.empty()) {
        std::uint64_t n = 0;
        if (!parse_u64(preview, n) || n > 1024 * 1024) {
            error = "option PreviewSize=\"" + printable_excerpt(preview) +
                    "\" is not a number of bytes (0..1048576; empty = the server's choice)";
            return false;
        }
        c.preview_size = static_cast<long>(n);
    }
    c.connect_timeout = std::chrono::seconds(avc_option_long("ConnectTimeout", 10, 1, 60));
    c.startup_timeout = std::chrono::seconds(avc_option_long("StartupTimeout", 90, 1, 300));
    c.scan_timeout = std::chrono::seconds(avc_option_long("ScanTimeout", 120, 5, 3600));
    std::string max = read_option("MaxFileSize");
    if (!parse_u64(max, c.max_file_size)) {
        error = "option MaxFileSize=\"" + printable_excerpt(max) +
                "\" is not a number of bytes (0 = no limit)";
        return false;
    }
    for (const std::string &entry : entries) {
        netplugin::Endpoint e;
        if (!netplugin::parse_endpoint(entry, e)) {
            error = "option Server: \"" + printable_excerpt(entry) +
                    "\" is not host, host:port, [IPv6] or [IPv6]:port (entries are separated "
                    "by commas)";
            return false;
        }
        Server one = s;
        one.host = e.host;
        if (!e.port.empty())
            one.port = e.port;
        c.servers.push_back(one);
    }
    c.health = std::make_shared<netplugin::Health>(c.servers.size());
    out = c;
    return true;
}

} // namespace avicap
