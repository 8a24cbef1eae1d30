/*
 * The simple plugin API (avPlugin.h) adapted to a C++ scanner, as both network
 * plugins need it: the engine's state between plugin_init and plugin_close,
 * the registry of worker contexts, the count of scans in flight that
 * plugin_close waits for, and the exception barrier in front of the C
 * interface (no exception may cross into the product).
 *
 * `Scanner` is one worker's context: it has a `mutex` held during a scan,
 * scan(shared, filename, result), close_session() and shutdown(). `Shared` is
 * what plugin_init made and every scan reads (the pool, the options); a scan
 * holds a reference, so a plugin_init meanwhile never frees it under the scan.
 * Each plugin keeps its own extern "C" functions (a line each) and what only
 * it does at start and stop.
 */
#ifndef NETPLUGIN_PLUGIN_ENGINE_H
#define NETPLUGIN_PLUGIN_ENGINE_H

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <vector>

#include "avPlugin.h"

namespace netplugin {

template <typename Scanner, typename Shared>
class PluginEngine {
public:
    /* `name` is the plugin's ("avir_clam"), for the messages. */
    explicit PluginEngine(const char *name)
        : name_(name) {}

    /* plugin_init's result in use from now on; the scans already running keep theirs. */
    void install(std::shared_ptr<Shared> shared)
    {
        std::lock_guard<std::mutex> lock(mutex_);
        shared_ = std::move(shared);
    }

    /* A copy: the caller may lock each scanner without holding the registry. */
    std::vector<std::shared_ptr<Scanner>> scanners()
    {
        std::lock_guard<std::mutex> lock(mutex_);
        return scanners_;
    }

    /*
     * plugin_close, first part: lets scans in flight finish, then cuts their
     * connections so that none outlives the engine for long.
     */
    void wait_for_scans()
    {
        std::unique_lock<std::mutex> lock(mutex_);
        if (!idle_.wait_for(lock, kCloseGrace, [&] { return in_flight_ == 0; })) {
            avc_log_warning("%s: %d scan(s) still running after %lld s; cutting their "
                            "connections",
                            name_, in_flight_, static_cast<long long>(kCloseGrace.count()));
            for (const auto &s : scanners_)
                s->shutdown();
            idle_.wait_for(lock, kCloseAfterShutdown, [&] { return in_flight_ == 0; });
        }
    }

    /*
     * plugin_close, last part: closes the idle workers' sessions (a worker busy
     * still keeps its own) and drops what plugin_init made.
     */
    void close()
    {
        for (const auto &s : scanners()) {
            std::unique_lock<decltype(s->mutex)> lock(s->mutex, std::try_to_lock);
            if (lock.owns_lock())
                s->close_session();
        }
        std::lock_guard<std::mutex> lock(mutex_);
        shared_.reset();
        avc_log_debug("%s stopped", name_);
    }

    /* plugin_thread_init. Contexts outlive plugin_close/plugin_init: the host may
       keep its workers. */
    int thread_init(void **context)
    {
        try {
            auto scanner = std::make_shared<Scanner>();
            std::lock_guard<std::mutex> lock(mutex_);
            scanners_.push_back(scanner);
            *context = scanner.get();
            return 1;
        } catch (...) {
            avc_set_error("%s: out of memory for a thread context", name_);
            return 0;
        }
    }

    /* plugin_thread_close: waits for whoever holds the worker's context (a
       keep-alive), then closes its session; the last reference frees it. */
    void thread_close(void *context)
    {
        std::shared_ptr<Scanner> dying;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = std::find_if(scanners_.begin(), scanners_.end(),
                                   [context](const std::shared_ptr<Scanner> &s) {
                                       return s.get() == context;
                                   });
            if (it == scanners_.end())
                return;
            dying = std::move(*it);
            scanners_.erase(it);
        }
        std::lock_guard<decltype(dying->mutex)> lock(dying->mutex);
        dying->close_session();
    }

    /*
     * plugin_test_file: any exception is this file's failure, never the host's.
     * What throws in a scan is mostly a resource running out (no descriptor for
     * an io_context or a socket, no memory): the worker's sessions are dropped
     * unused, and the next scan builds them again once the resources are back.
     */
    int test_file(void *context, const char *filename, char *result)
    {
        try {
            InFlight guard(*this);
            if (!guard.shared()) {
                avc_format(result, AVP_RESULT_SIZE, "%s: scan of %s requested while stopped",
                           name_, filename);
                return AVCHK_ERROR;
            }
            auto *scanner = static_cast<Scanner *>(context);
            std::lock_guard<decltype(scanner->mutex)> lock(scanner->mutex);
            return scan_or_discard(*scanner, guard.shared(), filename, result);
        } catch (const std::exception &ex) {
            avc_format(result, AVP_RESULT_SIZE, "internal error scanning %s: %s", filename,
                       ex.what());
        } catch (...) {
            avc_format(result, AVP_RESULT_SIZE, "internal error scanning %s", filename);
        }
        return AVCHK_FAILED;
    }

    /* plugin_init and plugin_close behind the barrier: `start` returns 1 or 0. */
    template <typename Start>
    int guarded_init(Start start)
    {
        try {
            return start();
        } catch (const std::exception &ex) {
            avc_set_error("%s: cannot start: %s", name_, ex.what());
        } catch (...) {
            avc_set_error("%s: cannot start: unknown exception", name_);
        }
        return 0;
    }
    template <typename Stop>
    void guarded_close(Stop stop)
    {
        try {
            stop();
        } catch (...) {
            avc_log_error("%s: error while stopping", name_);
        }
    }

private:
    /* Scanner::scan with the worker's lock held; an exception discards its sessions. */
    int scan_or_discard(Scanner &scanner, const std::shared_ptr<Shared> &shared,
                        const char *filename, char *result)
    {
        try {
            return scanner.scan(shared, filename, result);
        } catch (const std::bad_alloc &) {
            scanner.discard_sessions();
            avc_format(result, AVP_RESULT_SIZE,
                       "cannot scan %s: %s is out of memory; its connections are reopened "
                       "at the next scan (check the product's memory limit, ulimit -v)",
                       filename, name_);
        } catch (const std::exception &ex) {
            scanner.discard_sessions();
            avc_format(result, AVP_RESULT_SIZE,
                       "cannot scan %s: %s failed: %s; its connections are reopened at the "
                       "next scan (\"too many open files\": raise the product's limit, "
                       "ulimit -n)",
                       filename, name_, ex.what());
        }
        return AVCHK_FAILED;
    }

    /* How long plugin_close lets scans in flight finish before cutting their sockets. */
    static constexpr std::chrono::seconds kCloseGrace{10};
    static constexpr std::chrono::seconds kCloseAfterShutdown{5};

    /* Counts a scan in flight so that plugin_close can wait for it. */
    class InFlight {
    public:
        explicit InFlight(PluginEngine &e)
            : e_(e)
        {
            std::lock_guard<std::mutex> lock(e_.mutex_);
            e_.in_flight_++;
            shared_ = e_.shared_;
        }
        ~InFlight()
        {
            std::lock_guard<std::mutex> lock(e_.mutex_);
            if (--e_.in_flight_ == 0)
                e_.idle_.notify_all();
        }
        InFlight(const InFlight &) = delete;
        InFlight &operator=(const InFlight &) = delete;
        const std::shared_ptr<Shared> &shared() const { return shared_; }

    private:
        PluginEngine &e_;
        std::shared_ptr<Shared> shared_;
    };

    const char *const name_;
    std::mutex mutex_;
    std::condition_variable idle_; /* signalled when in_flight_ drops to 0 */
    int in_flight_ = 0;
    std::shared_ptr<Shared> shared_;
    std::vector<std::shared_ptr<Scanner>> scanners_;
};

} // namespace netplugin

#endif
