/*
 * The plugin's options: the table the glue (avCommon.c) stores and shows in
 * get_plugin_config, and their parsed, validated values.
 */
#ifndef AVIR_ICAP_CONFIG_H
#define AVIR_ICAP_CONFIG_H

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "avPlugin.h"
#include "connection.h"
#include "icap_parser.h"
#include "pool.h"

namespace avicap {

/*
 * One ICAP server and service; the Server option may list several (a pool,
 * netplugin/src/pool.h has the syntax and the health rules), all with one Service.
 */
struct Server {
    std::string host;                /* Server: host name, IPv4 or IPv6 literal */
    std::string port;                /* Port, as the resolver's service string */
    std::string service;             /* Service: the path of icap://host:port/<service> */
    std::vector<Endpoint> endpoints; /* resolved once, by plugin_init */
    ServiceOptions options;          /* what its OPTIONS said, at plugin_init */
    long preview = -1;               /* bytes of preview to send; -1: none */
    /* The largest file the service scans (ServiceMaxSize); 0: no limit known. A
       "clean" answer for a larger file is IMPOSSIBLE. */
    std::uint64_t scan_limit = 0;
    std::string scan_limit_source; /* where scan_limit comes from, for messages */

    /* "icap://127.0.0.1:1344/avscan", for messages. */
    std::string uri() const;
    /* "127.0.0.1:1344" or "[::1]:1344": the Host header. */
    std::string authority() const;
};

struct Config {
    std::vector<Server> servers; /* one, or a pool */
    /* The pool's health, shared by every worker (thread-safe); made by load_config. */
    std::shared_ptr<netplugin::Health> health;
    long preview_size = -1; /* PreviewSize; -1: what OPTIONS says */
    std::chrono::seconds connect_timeout{10};
    std::chrono::seconds startup_timeout{90};
    std::chrono::seconds scan_timeout{120};
    std::size_t chunk_size = 64 * 1024;
    std::uint64_t max_file_size = 0; /* 0: no limit of our own */
};

/* scan_limit_source while ServiceMaxSize=auto waits for the server's OPTIONS. */
constexpr char kAutoScanLimit[] = "ServiceMaxSize=auto";

/* ServiceMaxSize=auto: the limit the service is known to have, from its name and
   its OPTIONS' Service header (called once OPTIONS was answered). */
void decide_auto_scan_limit(Server &server);

extern const avp_option kOptions[];
extern const std::size_t kOptionCount;

/* Reads the stored option values; on a bad value writes why into error and returns false. */
bool load_config(Config &out, std::string &error);

} // namespace avicap

#endif
