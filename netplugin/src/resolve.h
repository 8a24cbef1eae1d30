/*
 * Name resolution with a deadline. getaddrinfo cannot be interrupted and a
 * slow DNS would hold plugin_init for as long as it likes: Asio's resolver runs
 * it on a thread of its own while this waits at most `timeout`.
 */
#ifndef NETPLUGIN_RESOLVE_H
#define NETPLUGIN_RESOLVE_H

#include <string>
#include <vector>

#include <boost/asio/ip/tcp.hpp>

#include "deadline.h"

namespace netplugin {

enum class Resolution { Found,
                        TimedOut,
                        Failed };

/*
 * Appends every address of `host` (a literal address is taken as it is, without
 * a lookup) with the numeric `port` to `out`. On Failed, `ec` says why.
 */
Resolution resolve_tcp(const std::string &host, const std::string &port, Clock::duration timeout,
                       std::vector<boost::asio::ip::tcp::endpoint> &out,
                       boost::system::error_code &ec);

} // namespace netplugin

#endif
