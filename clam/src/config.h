/*
 * The plugin's options: the table the glue (avCommon.c) stores and shows in
 * get_plugin_config, and their parsed, validated values.
 */
#ifndef AVIR_CLAM_CONFIG_H
#define AVIR_CLAM_CONFIG_H

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <boost/asio/generic/stream_protocol.hpp>

#include "avPlugin.h"
#include "clamd_conf.h"
#include "fdpass.h"

namespace avclam {

struct Config {
    /* As read, these may list several instances (clamd_pool.h splits them);
       each instance's own Config holds one. */
    std::string address;      /* Address: host name, IPv4 or IPv6 literal */
    std::string port;         /* Port, as the resolver's service string */
    std::string local_socket; /* LocalSocket: UNIX socket path; empty means TCP */
    /* No address set (Address, Port at their defaults, LocalSocket empty): plugin_init
       looks for clamd in the stock places (discovery.h) and fills in where it is. */
    bool discover = false;
    std::chrono::seconds startup_timeout{90};
    std::chrono::seconds scan_timeout{120};
    std::chrono::seconds keepalive_interval{10};
    std::size_t chunk_size = 64 * 1024;
    std::uint64_t max_file_size = 0; /* 0: no limit of our own, clamd's StreamMaxLength decides */
    FdPass fd_pass = FdPass::Auto;   /* FILDES over the UNIX socket, or INSTREAM (fdpass.h) */
    std::string clamd_conf;          /* ClamdConf: the clamd.conf to read limits from ("" = stock) */
    /* Per instance, set by plugin_init: whether clamd reports a file over its limits
       (AlertExceedsMax yes, found by the start-up probe), and if not, the size over
       which it would skip a file and call it clean (clamd_conf.h). */
    bool clamd_alerts_on_limits = false;
    SizeLimit clamd_limit;
    /* Where clamd is, resolved once by plugin_init: Asio resolves on a thread of
       its own per io_context, and workers must not leave threads behind. */
    std::vector<boost::asio::generic::stream_protocol::endpoint> endpoints;

    /* "127.0.0.1:3310", "[::1]:3310" or "/run/clamav/clamd.ctl", for messages. */
    std::string where() const;
    bool uses_tcp() const { return local_socket.empty(); }
};

extern const avp_option kOptions[];
extern const std::size_t kOptionCount;

/* Reads the stored option values; on a bad value writes why into error and returns false. */
bool load_config(Config &out, std::string &error);

} // namespace avclam

#endif
