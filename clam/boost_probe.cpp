#include <boost/asio.hpp>
extern "C" __attribute__((visibility("default"))) int probe() { boost::asio::io_context io; return (int)io.run(); }
