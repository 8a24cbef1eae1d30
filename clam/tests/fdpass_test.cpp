/*
 * Unit tests of FdPass's pure logic (clam/src/fdpass.cpp), compiled for the
 * build machine by tests/test_clam_parser.py.
 */
#include <cstdio>
#include <cstring>

#include "../src/fdpass.h"

#include "../../netplugin/tests/check.h"

using namespace avclam;

static void parsing()
{
    FdPass m = FdPass::Off;
    CHECK(parse_fd_pass("auto", m) && m == FdPass::Auto);
    CHECK(parse_fd_pass("ON", m) && m == FdPass::On);
    CHECK(parse_fd_pass("Off", m) && m == FdPass::Off);
    m = FdPass::Auto;
    CHECK(!parse_fd_pass("", m) && m == FdPass::Auto);
    CHECK(!parse_fd_pass("yes", m));
    CHECK(!parse_fd_pass("1", m));
    CHECK(!parse_fd_pass("onn", m));
    CHECK(!parse_fd_pass(std::string_view("on\0", 3), m));
    CHECK(std::strcmp(fd_pass_name(FdPass::Auto), "auto") == 0);
    CHECK(std::strcmp(fd_pass_name(FdPass::On), "on") == 0);
    CHECK(std::strcmp(fd_pass_name(FdPass::Off), "off") == 0);
}

static void choosing()
{
    // A descriptor travels only over the UNIX socket.
    CHECK(choose_method(FdPass::Auto, true, false) == ScanMethod::Fildes);
    CHECK(choose_method(FdPass::Auto, false, false) == ScanMethod::Instream);
    CHECK(choose_method(FdPass::Off, true, false) == ScanMethod::Instream);
    // auto falls back once clamd refused; on keeps asking (and the scan FAILs).
    CHECK(choose_method(FdPass::Auto, true, true) == ScanMethod::Instream);
    CHECK(choose_method(FdPass::On, true, true) == ScanMethod::Fildes);
    CHECK(choose_method(FdPass::On, true, false) == ScanMethod::Fildes);
    // plugin_init refuses on over TCP, before any scan.
    CHECK(*fd_pass_conflict(FdPass::On, false) != '\0');
    CHECK(*fd_pass_conflict(FdPass::On, true) == '\0');
    CHECK(*fd_pass_conflict(FdPass::Auto, false) == '\0');
    CHECK(*fd_pass_conflict(FdPass::Off, false) == '\0');
}

int main()
{
    parsing();
    choosing();
    std::printf("%d checks, %d failures\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
