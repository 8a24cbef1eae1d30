/*
 * One worker's scanner: its clamd sessions (one per instance of the pool, opened
 * when first used) and upload buffer, and the mapping of a file to an AVCHK_*
 * verdict. Reopens a session clamd has dropped, once per file, before reporting
 * anything. In a pool, each scan takes the next healthy instance; an instance
 * that fails is marked down for all workers and the file goes to another, once
 * for a scan that was in flight.
 */
#ifndef AVIR_CLAM_SCANNER_H
#define AVIR_CLAM_SCANNER_H

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "clamd_pool.h"
#include "config.h"
#include "session.h"
#include "worker_connections.h"

namespace avclam {

/* Lets the next FILDES refusal and the first FILDES success be logged again (plugin_init). */
void reset_fd_pass_notices();

class Scanner {
public:
    /* Writes the virus name or a text about `filename` into result (AVP_RESULT_SIZE bytes). */
    int scan(const std::shared_ptr<ClamdPool> &pool, const char *filename, char *result);

    /* Called by the keep-alive thread with `mutex` held. */
    void keep_alive(Clock::duration idle_for);
    void close_session();
    void shutdown();
    /*
     * After an exception in a scan (out of descriptors or memory): drops every
     * session without using it again, since an operation cut short may have left
     * handlers pointing into finished calls; the next scan builds them anew.
     */
    void discard_sessions();

    /* Held by the worker during a scan and by the keep-alive during a PING. */
    std::timed_mutex mutex;

private:
    /* How a scan on one instance ended: a verdict, or the instance failed. */
    struct Attempt {
        int code;
        bool instance_failed = false; /* refused, timed out or dropped: try another */
        bool in_flight = false;       /* ...after the file had been handed over */
        std::string brief;            /* why, for the pool's message */
    };
    struct Instance {
        Session session;
        bool fildes_refused = false; /* this clamd refused FILDES since the pool was made */
    };

    void ping_idle_sessions(Clock::duration idle_for);
    bool connect_or_reuse(const Config &config, Session &session, bool &reused,
                          std::string &error);
    int scan_open_file(ClamdPool &pool, int fd, const char *filename, char *result);
    Attempt scan_on(const Config &config, Instance &instance, int fd, const char *filename,
                    char *result);
    /* After clamd refused a descriptor: the way on, logged once per plugin_init. */
    void note_refusal(const Config &config, Instance &instance, const std::string &reply);

    /* one per clamd of the pool they were made for */
    netplugin::WorkerConnections<ClamdPool, Instance> instances_;
    std::vector<char> buffer_;
    /* The scan in progress: when it must have ended (netplugin::scan_deadline),
       its file's size as opened, and whether that size read 0 although it holds data. */
    Clock::time_point deadline_{};
    std::uint64_t size_ = 0;
    bool unsized_ = false;
};

} // namespace avclam

#endif
