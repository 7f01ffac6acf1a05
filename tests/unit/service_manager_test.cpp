// The branch's side of systemd's notify protocol: what it takes from the
// environment (and removes from it), and the datagrams it sends.
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <string>

#include <unistd.h>

#include "apps/service_manager.hpp"
#include "tests/notify_listener.hpp"

using namespace cyme;
using cyme::testing::notify_listener;

namespace {

/// The service manager of an environment holding `vars` (NAME, VALUE
/// pairs; the three variables are cleared first).
service_manager with_environment(
  std::initializer_list<std::pair<const char*, std::string>> vars) {
  for (auto name : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"})
    ::unsetenv(name);
  for (auto& [name, value] : vars)
    ::setenv(name, value.c_str(), 1);
  return service_manager::from_environment();
}

} // namespace

BOOST_AUTO_TEST_SUITE(service_manager_protocol)

BOOST_AUTO_TEST_CASE(the_variables_are_taken_and_removed_from_the_environment) {
  auto sm = with_environment({{"NOTIFY_SOCKET", "/run/systemd/notify"},
                              {"WATCHDOG_USEC", "30000000"},
                              {"WATCHDOG_PID", std::to_string(::getpid())}});
  BOOST_TEST(sm.active());
  BOOST_REQUIRE(sm.watchdog().has_value());
  BOOST_TEST(sm.watchdog()->count() == 30000000);
  // What the branch starts afterwards does not inherit them.
  BOOST_TEST(std::getenv("NOTIFY_SOCKET") == nullptr);
  BOOST_TEST(std::getenv("WATCHDOG_USEC") == nullptr);
  BOOST_TEST(std::getenv("WATCHDOG_PID") == nullptr);
}

BOOST_AUTO_TEST_CASE(the_watchdog_is_off_unless_it_is_for_this_process) {
  // Meant for another process (e.g. inherited from a parent).
  auto other = with_environment({{"NOTIFY_SOCKET", "/run/systemd/notify"},
                                 {"WATCHDOG_USEC", "30000000"},
                                 {"WATCHDOG_PID", "1"}});
  BOOST_TEST(other.active());
  BOOST_TEST(!other.watchdog().has_value());
  // Not a number, zero, negative, or a number with a tail.
  for (auto usec : {"", "0", "-5", "30s", "1e6", "99999999999999999999"}) {
    auto sm = with_environment({{"WATCHDOG_USEC", usec}});
    BOOST_TEST(!sm.watchdog().has_value(), usec);
  }
  // Without WATCHDOG_PID, the period is ours.
  auto ours = with_environment({{"WATCHDOG_USEC", "500000"}});
  BOOST_REQUIRE(ours.watchdog().has_value());
  BOOST_TEST(ours.watchdog()->count() == 500000);
}

BOOST_AUTO_TEST_CASE(without_a_service_manager_nothing_is_sent) {
  auto sm = with_environment({});
  BOOST_TEST(!sm.active());
  BOOST_TEST(!sm.watchdog().has_value());
  BOOST_TEST(sm.notify("READY=1").empty());
}

BOOST_AUTO_TEST_CASE(states_reach_a_socket_at_a_path_and_an_abstract_one) {
  for (bool abstract : {false, true}) {
    notify_listener l{abstract};
    auto sm = with_environment({{"NOTIFY_SOCKET", l.address()}});
    BOOST_TEST(sm.notify("READY=1\nSTATUS=3 instances").empty(), l.address());
    BOOST_TEST(l.next() == "READY=1\nSTATUS=3 instances");
    BOOST_TEST(sm.notify("STOPPING=1").empty());
    BOOST_TEST(l.next() == "STOPPING=1");
  }
}

BOOST_AUTO_TEST_CASE(a_socket_that_cannot_be_reached_gives_the_reason) {
  // Relative, too long, and a path where nothing listens: each an error,
  // nothing thrown.
  auto relative = with_environment({{"NOTIFY_SOCKET", "run/notify"}});
  BOOST_TEST(relative.notify("READY=1").find("neither an absolute path")
             != std::string::npos);
  auto too_long = with_environment(
    {{"NOTIFY_SOCKET", "/" + std::string(200, 'x')}});
  BOOST_TEST(!too_long.notify("READY=1").empty());
  auto nobody = with_environment(
    {{"NOTIFY_SOCKET", "/nonexistent-cyme-folder/notify"}});
  auto err = nobody.notify("READY=1");
  BOOST_TEST(err.find("cannot notify /nonexistent-cyme-folder/notify")
             != std::string::npos, err);
}

BOOST_AUTO_TEST_SUITE_END()
