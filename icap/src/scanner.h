/*
 * One worker's scanner: its persistent ICAP connections (one per server of the
 * pool, opened when first used) and upload buffer, and the mapping of a file to
 * an AVCHK_* verdict. Reconnects once per file when the server dropped a
 * connection kept from an earlier scan. In a pool, each scan takes the next
 * healthy server; one that fails is marked down for all workers and the file
 * goes to another (once for a scan in flight); a down server is asked OPTIONS
 * again by the first scan a second later, and every second after.
 */
#ifndef AVIR_ICAP_SCANNER_H
#define AVIR_ICAP_SCANNER_H

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config.h"
#include "session.h"
#include "worker_connections.h"

namespace avicap {

class Scanner {
public:
    /* Writes the virus name or a text about `filename` into result (AVP_RESULT_SIZE bytes). */
    int scan(const std::shared_ptr<const Config> &config, const char *filename, char *result);

    void close_session();
    void shutdown();
    /*
     * After an exception in a scan (out of descriptors or memory): drops every
     * connection without using it again, since an operation cut short may have
     * left handlers pointing into finished calls; the next scan builds them anew.
     */
    void discard_sessions();

    /* Held by the worker during a scan. */
    std::mutex mutex;

private:
    struct Attempt {
        int code;
        bool server_failed; /* refused, timed out or dropped: try another */
        bool in_flight;     /* ...after the file had been handed over */
        std::string brief;
    };
    int scan_pool(const Config &config, int fd, std::uint64_t size, const char *filename,
                  char *result);
    Attempt scan_on(const Config &config, std::size_t index, int fd, std::uint64_t size,
                    const char *filename, char *result);
    void probe_down_servers(const Config &config);
    bool open_before_deadline(const Config &config, const Server &server, Session &session,
                              std::string &error);

    /* one per server of the options they were opened with */
    netplugin::WorkerConnections<const Config, Session> sessions_;
    std::vector<char> buffer_;
    Clock::time_point deadline_{}; /* when the scan in progress must have ended */
};

} // namespace avicap

#endif
