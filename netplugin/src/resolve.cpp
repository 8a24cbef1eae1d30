#include "resolve.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>

namespace netplugin {

namespace asio = boost::asio;
using boost::system::error_code;

Resolution resolve_tcp(const std::string &host, const std::string &port, Clock::duration timeout,
                       std::vector<asio::ip::tcp::endpoint> &out, error_code &ec)
{
    asio::ip::address literal = asio::ip::make_address(host, ec);
    if (!ec) {
        out.emplace_back(literal, static_cast<unsigned short>(std::stoi(port)));
        return Resolution::Found;
    }
    /* A local io_context: its resolver thread ends with this function. */
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    bool done = false;
    asio::ip::tcp::resolver::results_type results;
    resolver.async_resolve(host, port, asio::ip::tcp::resolver::numeric_service,
                           [&](const error_code &e, asio::ip::tcp::resolver::results_type r) {
                               ec = e;
                               results = std::move(r);
                               done = true;
                           });
    io.run_for(timeout);
    if (!done) {
        /* getaddrinfo cannot be interrupted; the io_context's destructor waits for it. */
        resolver.cancel();
        return Resolution::TimedOut;
    }
    if (ec)
        return Resolution::Failed;
    for (const auto &entry : results)
        out.push_back(entry.endpoint());
    return Resolution::Found;
}

} // namespace netplugin
