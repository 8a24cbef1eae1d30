// What the plugins need of Boost: header-only Asio with a timer and a loopback socket
// pair, run to completion on an io_context.
#include <boost/asio.hpp>
#include <boost/version.hpp>

#include <chrono>
#include <cstdio>
#include <string>

int main()
{
    boost::asio::io_context io;
    boost::asio::local::stream_protocol::socket a(io), b(io);
    boost::asio::local::connect_pair(a, b);
    std::string sent = "PING", received(4, '\0');
    boost::asio::write(a, boost::asio::buffer(sent));
    boost::asio::read(b, boost::asio::buffer(received));

    bool fired = false;
    boost::asio::steady_timer timer(io, std::chrono::milliseconds(1));
    timer.async_wait([&fired](const boost::system::error_code &ec) { fired = !ec; });
    io.run();

    if (received != sent || !fired) {
        std::printf("boost test_package: Asio failed (received '%s', timer %s)\n",
                    received.c_str(), fired ? "fired" : "did not fire");
        return 1;
    }
    std::printf("boost test_package: Boost %d.%d.%d Asio ok, %zu-bit\n", BOOST_VERSION / 100000,
                BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100, sizeof(void *) * 8);
    return 0;
}
