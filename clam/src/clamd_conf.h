/*
 * The size limits of a clamd, for a clamd that calls a file over them clean
 * (AlertExceedsMax no, its default): read from the clamd.conf the plugin can
 * read, else ClamAV's oldest stock values (Debian's too), so that such a file
 * is reported as not scannable instead of clean.
 *
 * Which clamd.conf: the one the option ClamdConf names; else, of the stock
 * files (kStockClamdConfs), the one whose LocalSocket is the socket used, or
 * (for TCP to this machine) whose TCPSocket is the port used.
 *
 * The parsing is pure (clam/tests/clamd_conf_test.cpp); only
 * read_size_limit() reads files.
 */
#ifndef AVIR_CLAM_CLAMD_CONF_H
#define AVIR_CLAM_CLAMD_CONF_H

#include <cstdint>
#include <string>

namespace avclam {

/* ClamAV's stock MaxFileSize and StreamMaxLength before 0.104, and Debian's clamd.conf
   still: the lowest a stock clamd uses, taken when the real value cannot be known. */
constexpr std::uint64_t kStockMaxFileSize = 25u * 1024 * 1024;
constexpr std::uint64_t kStockMaxScanSize = 100u * 1024 * 1024;

/* Debian/Ubuntu, RHEL/Fedora (EPEL clamd@scan), and a clamd built from source. */
extern const char *const kStockClamdConfs[];

/* What of a clamd.conf matters here; a size is 0 for "no limit", -1 when not set. */
struct ClamdConf {
    std::string local_socket;
    std::string tcp_socket;
    std::int64_t max_file_size = -1;
    std::int64_t max_scan_size = -1;
    std::int64_t stream_max_length = -1;
};

/* clamd.conf's size syntax: "25M", "512K", "1048576", "0"; false when not one. */
bool parse_clamd_size(const std::string &text, std::uint64_t &bytes);

/* The settings above from the text of a clamd.conf (later lines win, as in clamd). */
ClamdConf parse_clamd_conf(const std::string &text);

/* The largest file clamd scans rather than skips (0: none), and why, for messages. */
struct SizeLimit {
    std::uint64_t bytes = kStockMaxFileSize;
    std::string origin; /* "MaxFileSize 25M in /etc/clamav/clamd.conf" */
    bool from_conf = false;
};

/* The limit that a file passed or streamed to one clamd meets: MaxFileSize and
   MaxScanSize of `conf` (a setting not there counts as its oldest stock value). */
SizeLimit size_limit_of(const ClamdConf &conf, const std::string &path);

/*
 * The limit of the clamd at `local_socket` (or, when that is empty, TCP
 * `address`:`port`): from the file `conf_option` names when it is set, else from
 * the stock clamd.conf that describes that clamd, else the stock values.
 */
SizeLimit read_size_limit(const std::string &conf_option, const std::string &local_socket,
                          const std::string &address, const std::string &port);

} // namespace avclam

#endif
