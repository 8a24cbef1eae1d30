/*
 * avir_icap on the simple plugin API (avPlugin.h): what plugin_init and
 * plugin_close do for ICAP servers. The registry of worker contexts, the scans
 * in flight and the exception barrier are the ClamAV plugin's too
 * (netplugin/src/plugin_engine.h); unlike avir_clam there is no keep-alive
 * thread: an ICAP server keeps idle connections for minutes, and a dropped one
 * is reopened by the next scan.
 */
#include <memory>
#include <string>

#include "avPlugin.h"
#include "config.h"
#include "plugin_engine.h"
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

using Engine = netplugin::PluginEngine<Scanner, const Config>;

Engine &engine()
{
    static Engine e("avir_icap");
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
    engine().install(config);
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
    engine().wait_for_scans();
    engine().close();
}

} // namespace
} // namespace avicap

using namespace avicap;

extern "C" int avp_init(void)
{
    return engine().guarded_init(init);
}

extern "C" void avp_close(void)
{
    engine().guarded_close(close_engine);
}

extern "C" int avp_thread_init(void **context)
{
    return engine().thread_init(context);
}

extern "C" void avp_thread_close(void *context)
{
    engine().thread_close(context);
}

extern "C" int avp_test_file(void *context, const char *filename, const char *realname, char *result)
{
    (void)realname;
    return engine().test_file(context, filename, result);
}
