/*
 * avir_icap on the simple plugin API (avPlugin.h): the engine's life cycle,
 * the registry of worker contexts, and the exception barrier in front of the
 * C interface. The same shape as avir_clam, without a keep-alive thread: an
 * ICAP server keeps idle connections for minutes, and a dropped one is
 * reopened by the next scan.
 */
#include <algorithm>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "avPlugin.h"
#include "config.h"
#include "scanner.h"
#include "startup.h"

#ifndef ICAP_PLUGIN_VERSION
#define ICAP_PLUGIN_VERSION "0.0.0" /* CMake passes the project version */
#endif

extern "C" const avp_plugin_desc avp_plugin = {
    "avir_icap",
    "ICAP antivirus plugin " ICAP_PLUGIN_VERSION " for Kerio",
    avicap::kOptions,
    avicap::kOptionCount,
};

namespace avicap {
namespace {

/* How long plugin_close lets scans in flight finish before cutting their connections. */
constexpr auto kCloseGrace = std::chrono::seconds(10);
constexpr auto kCloseAfterShutdown = std::chrono::seconds(5);

struct Engine {
    std::mutex mutex;
    std::condition_variable idle; /* signalled when in_flight drops to 0 */
    int in_flight = 0;
    std::shared_ptr<const Config> config;
    /* Contexts outlive plugin_close/plugin_init: the host may keep its workers. */
    std::vector<std::shared_ptr<Scanner>> scanners;
};

Engine &engine()
{
    static Engine e;
    return e;
}

int init()
{
    auto config = std::make_shared<Config>();
    std::string error;
    if (!load_config(*config, error) || !probe_servers(*config, error)) {
        avc_set_error("%s", error.c_str());
        return 0;
    }
    Engine &e = engine();
    {
        std::lock_guard<std::mutex> lock(e.mutex);
        e.config = config;
    }
    std::string servers;
    for (const Server &server : config->servers)
        servers += (servers.empty() ? "" : ", ") + server.uri();
    avc_log_debug("avir_icap started: %s, ConnectTimeout %lld s, ScanTimeout %lld s, "
                  "MaxFileSize %llu",
                  servers.c_str(),
                  static_cast<long long>(config->connect_timeout.count()),
                  static_cast<long long>(config->scan_timeout.count()),
                  static_cast<unsigned long long>(config->max_file_size));
    return 1;
}

void close_engine()
{
    Engine &e = engine();
    std::vector<std::shared_ptr<Scanner>> scanners;
    {
        std::unique_lock<std::mutex> lock(e.mutex);
        if (!e.idle.wait_for(lock, kCloseGrace, [&] { return e.in_flight == 0; })) {
            avc_log_warning("avir_icap: %d scan(s) still running after %lld s; cutting their "
                            "connections",
                            e.in_flight, static_cast<long long>(kCloseGrace.count()));
            for (const auto &s : e.scanners)
                s->shutdown();
            e.idle.wait_for(lock, kCloseAfterShutdown, [&] { return e.in_flight == 0; });
        }
        scanners = e.scanners;
    }
    for (const auto &s : scanners) {
        std::unique_lock<std::mutex> lock(s->mutex, std::try_to_lock);
        if (lock.owns_lock())
            s->close_session();
    }
    std::lock_guard<std::mutex> lock(e.mutex);
    e.config.reset();
    avc_log_debug("avir_icap stopped");
}

/* Counts a scan in flight so that plugin_close can wait for it. */
class InFlight {
public:
    InFlight() : e_(engine())
    {
        std::lock_guard<std::mutex> lock(e_.mutex);
        e_.in_flight++;
        config_ = e_.config;
    }
    ~InFlight()
    {
        std::lock_guard<std::mutex> lock(e_.mutex);
        if (--e_.in_flight == 0)
            e_.idle.notify_all();
    }
    const std::shared_ptr<const Config> &config() const { return config_; }

private:
    Engine &e_;
    std::shared_ptr<const Config> config_;
};

} // namespace
} // namespace avicap

using namespace avicap;

extern "C" int avp_init(void)
{
    try {
        return init();
    } catch (const std::exception &ex) {
        avc_set_error("avir_icap: cannot start: %s", ex.what());
    } catch (...) {
        avc_set_error("avir_icap: cannot start: unknown exception");
    }
    return 0;
}

extern "C" void avp_close(void)
{
    try {
        close_engine();
    } catch (...) {
        avc_log_error("avir_icap: error while stopping");
    }
}

extern "C" int avp_thread_init(void **context)
{
    try {
        auto scanner = std::make_shared<Scanner>();
        Engine &e = engine();
        std::lock_guard<std::mutex> lock(e.mutex);
        e.scanners.push_back(scanner);
        *context = scanner.get();
        return 1;
    } catch (...) {
        avc_set_error("avir_icap: out of memory for a thread context");
        return 0;
    }
}

extern "C" void avp_thread_close(void *context)
{
    std::shared_ptr<Scanner> dying;
    {
        Engine &e = engine();
        std::lock_guard<std::mutex> lock(e.mutex);
        auto it = std::find_if(e.scanners.begin(), e.scanners.end(),
                               [context](const std::shared_ptr<Scanner> &s) { return s.get() == context; });
        if (it == e.scanners.end())
            return;
        dying = std::move(*it);
        e.scanners.erase(it);
    }
    std::lock_guard<std::mutex> lock(dying->mutex);
    dying->close_session();
}

extern "C" int avp_test_file(void *context, const char *filename, const char *realname, char *result)
{
    (void)realname;
    try {
        InFlight guard;
        if (!guard.config()) {
            avc_format(result, AVP_RESULT_SIZE, "avir_icap: scan of %s requested while stopped",
                       filename);
            return AVCHK_ERROR;
        }
        auto *scanner = static_cast<Scanner *>(context);
        std::lock_guard<std::mutex> lock(scanner->mutex);
        return scanner->scan(guard.config(), filename, result);
    } catch (const std::exception &ex) {
        avc_format(result, AVP_RESULT_SIZE, "internal error scanning %s: %s", filename, ex.what());
    } catch (...) {
        avc_format(result, AVP_RESULT_SIZE, "internal error scanning %s", filename);
    }
    return AVCHK_FAILED;
}
