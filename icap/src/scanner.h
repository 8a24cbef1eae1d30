/*
 * One worker's scanner: its persistent ICAP connection and upload buffer, and
 * the mapping of a file to an AVCHK_* verdict. Reconnects once per file when
 * the server dropped a connection kept from an earlier scan.
 */
#ifndef AVIR_ICAP_SCANNER_H
#define AVIR_ICAP_SCANNER_H

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config.h"
#include "session.h"

namespace avicap {

class Scanner {
public:
    /* Writes the virus name or a text about `filename` into result (AVP_RESULT_SIZE bytes). */
    int scan(const std::shared_ptr<const Config> &config, const char *filename, char *result);

    void close_session() { session_.close(); }
    void shutdown() { session_.shutdown(); }

    /* Held by the worker during a scan. */
    std::mutex mutex;

private:
    int scan_open_file(const Config &config, const Server &server, int fd, std::uint64_t size,
                       const char *filename, char *result);

    Session session_;
    std::shared_ptr<const Config> config_; /* the options the connection was opened with */
    std::vector<char> buffer_;
};

} // namespace avicap

#endif
