#include "clamd_conf.h"

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <fcntl.h>
#include <unistd.h>

namespace avclam {

const char *const kStockClamdConfs[] = {
    "/etc/clamav/clamd.conf",
    "/etc/clamd.d/scan.conf",
    "/etc/clamd.conf",
    "/usr/local/etc/clamd.conf",
    nullptr,
};

bool parse_clamd_size(const std::string &text, std::uint64_t &bytes)
{
    if (text.empty() || text[0] < '0' || text[0] > '9')
        return false;
    char *end = nullptr;
    errno = 0;
    unsigned long long n = std::strtoull(text.c_str(), &end, 10);
    if (errno != 0)
        return false;
    std::string suffix(end);
    std::uint64_t unit = 1;
    if (suffix == "k" || suffix == "K")
        unit = 1024;
    else if (suffix == "m" || suffix == "M")
        unit = 1024 * 1024;
    else if (suffix == "g" || suffix == "G")
        unit = 1024ull * 1024 * 1024;
    else if (!suffix.empty())
        return false;
    if (n > UINT64_MAX / unit)
        return false;
    bytes = n * unit;
    return true;
}

namespace {

std::int64_t size_setting(const std::string &value, std::int64_t before)
{
    std::uint64_t bytes = 0;
    if (!parse_clamd_size(value, bytes) || bytes > static_cast<std::uint64_t>(INT64_MAX))
        return before; /* clamd would refuse to start with it: keep what we had */
    return static_cast<std::int64_t>(bytes);
}

std::string size_text(std::uint64_t bytes)
{
    if (bytes % (1024 * 1024) == 0)
        return std::to_string(bytes / (1024 * 1024)) + "M";
    if (bytes % 1024 == 0)
        return std::to_string(bytes / 1024) + "K";
    return std::to_string(bytes);
}

/* POSIX reads, not iostreams: those would add a quarter of a megabyte to the plugin. */
bool read_text(const std::string &path, std::string &text)
{
    constexpr std::size_t kMaxConf = 1024 * 1024; /* a clamd.conf is a few KiB */
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    text.clear();
    char buf[4096];
    ssize_t n = 0;
    while (text.size() < kMaxConf && (n = ::read(fd, buf, sizeof buf)) > 0)
        text.append(buf, static_cast<std::size_t>(n));
    ::close(fd);
    return n >= 0;
}

/* /var/run is a link to /run: both spellings name the same socket. */
std::string canonical_socket(const std::string &path)
{
    const std::string var_run = "/var/run/";
    if (path.compare(0, var_run.size(), var_run) == 0)
        return "/run/" + path.substr(var_run.size());
    return path;
}

bool loopback(const std::string &address)
{
    return address == "127.0.0.1" || address == "::1" || address == "localhost";
}

bool describes(const ClamdConf &conf, const std::string &local_socket, const std::string &address,
               const std::string &port)
{
    if (!local_socket.empty())
        return !conf.local_socket.empty() &&
               canonical_socket(conf.local_socket) == canonical_socket(local_socket);
    return loopback(address) && conf.tcp_socket == port;
}

} // namespace

namespace {

/* The first two blank-separated words of `line`. */
void first_words(const std::string &line, std::string &name, std::string &value)
{
    const char *blanks = " \t\r";
    std::string::size_type a = line.find_first_not_of(blanks);
    std::string::size_type b = line.find_first_of(blanks, a);
    name = a == std::string::npos ? "" : line.substr(a, b == std::string::npos ? b : b - a);
    std::string::size_type c = line.find_first_not_of(blanks, b);
    std::string::size_type d = line.find_first_of(blanks, c);
    value = c == std::string::npos ? "" : line.substr(c, d == std::string::npos ? d : d - c);
}

} // namespace

ClamdConf parse_clamd_conf(const std::string &text)
{
    ClamdConf conf;
    std::string::size_type start = 0;
    while (start < text.size()) {
        std::string::size_type end = text.find('\n', start);
        if (end == std::string::npos)
            end = text.size();
        std::string name, value;
        first_words(text.substr(start, end - start), name, value);
        start = end + 1;
        if (name.empty() || name[0] == '#' || value.empty())
            continue;
        if (name == "LocalSocket")
            conf.local_socket = value;
        else if (name == "TCPSocket")
            conf.tcp_socket = value;
        else if (name == "MaxFileSize")
            conf.max_file_size = size_setting(value, conf.max_file_size);
        else if (name == "MaxScanSize")
            conf.max_scan_size = size_setting(value, conf.max_scan_size);
        else if (name == "StreamMaxLength")
            conf.stream_max_length = size_setting(value, conf.stream_max_length);
    }
    return conf;
}

SizeLimit size_limit_of(const ClamdConf &conf, const std::string &path)
{
    struct Setting {
        const char *name;
        std::int64_t value;
        std::uint64_t stock;
    } settings[] = {{"MaxFileSize", conf.max_file_size, kStockMaxFileSize},
                    {"MaxScanSize", conf.max_scan_size, kStockMaxScanSize}};
    SizeLimit limit;
    limit.bytes = 0;
    limit.from_conf = true;
    for (const Setting &s : settings) {
        const bool set = s.value >= 0;
        const std::uint64_t bytes = set ? static_cast<std::uint64_t>(s.value) : s.stock;
        if (bytes == 0 || (limit.bytes != 0 && bytes >= limit.bytes))
            continue; /* 0: clamd has no such limit */
        limit.bytes = bytes;
        limit.origin = std::string(s.name) + " " + size_text(bytes) +
                       (set ? " in " + path : " (not set in " + path + ": taken as ClamAV's "
                                                                       "lowest stock value)");
    }
    if (limit.bytes == 0)
        limit.origin = "no MaxFileSize or MaxScanSize limit in " + path;
    return limit;
}

SizeLimit read_size_limit(const std::string &conf_option, const std::string &local_socket,
                          const std::string &address, const std::string &port)
{
    std::string text;
    if (!conf_option.empty()) {
        if (read_text(conf_option, text))
            return size_limit_of(parse_clamd_conf(text), conf_option);
    } else {
        for (const char *const *path = kStockClamdConfs; *path; path++) {
            if (!read_text(*path, text))
                continue;
            ClamdConf conf = parse_clamd_conf(text);
            if (describes(conf, local_socket, address, port))
                return size_limit_of(conf, *path);
        }
    }
    SizeLimit limit;
    limit.bytes = kStockMaxFileSize;
    limit.from_conf = false;
    limit.origin = "MaxFileSize " + size_text(kStockMaxFileSize) + ", assumed (" +
                   (conf_option.empty() ? std::string("no clamd.conf of this clamd found in the "
                                                      "stock places; name it with the option "
                                                      "ClamdConf")
                                        : "ClamdConf=" + conf_option + " cannot be read") +
                   ")";
    return limit;
}

} // namespace avclam
