/*
 * One worker's scanner: its clamd session and upload buffer, and the mapping
 * of a file to an AVCHK_* verdict. Reopens a session clamd has dropped, once
 * per file, before reporting anything.
 */
#ifndef AVIR_CLAM_SCANNER_H
#define AVIR_CLAM_SCANNER_H

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "config.h"
#include "session.h"

namespace avclam {

/* Lets the next FILDES refusal and the first FILDES success be logged again (plugin_init). */
void reset_fd_pass_notices();

class Scanner {
public:
    /* Writes the virus name or a text about `filename` into result (AVP_RESULT_SIZE bytes). */
    int scan(const std::shared_ptr<const Config> &config, const char *filename, char *result);

    /* Called by the keep-alive thread with `mutex` held. */
    void keep_alive(Clock::duration idle_for);
    void close_session() { session_.close(); }
    void shutdown() { session_.shutdown(); }

    /* Held by the worker during a scan and by the keep-alive during a PING. */
    std::timed_mutex mutex;

private:
    bool connect_or_reuse(const Config &config, bool &reused, std::string &error);
    int scan_open_file(const Config &config, int fd, std::uint64_t size, const char *filename,
                       char *result);
    /* After clamd refused a descriptor: the way on, logged once per plugin_init. */
    void note_refusal(const Config &config, const std::string &reply);

    Session session_;
    std::shared_ptr<const Config> config_; /* the options the session was opened with */
    std::vector<char> buffer_;
    bool fildes_refused_ = false; /* clamd refused FILDES since config_ was loaded */
};

} // namespace avclam

#endif
