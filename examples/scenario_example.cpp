// A user's own scenario in C++, against the installed cyme::testing (no
// test framework needed): the real supervisor in virtual time behind the
// fakes. A worker that hangs is restarted when a round finds it silent.
//
// Built against an installed cyme with examples/CMakeLists.txt
// (find_package(cyme), target cyme::testing), as tests/install/check.sh does.
#include <chrono>
#include <iostream>

#include "testing/fixture.hpp"

using namespace std::chrono_literals;

int main() {
  cyme::testing::supervision_fixture fx;
  fx.add_instance("w1", {"orders"});
  cyme::supervisor_settings settings;
  settings.interval = 10s;
  fx.start(settings);
  fx.advance(2s);
  auto first_pid = fx.world.workers["w1"].pid;
  // The process stops answering, as a hung worker would.
  fx.world.workers["w1"].responsive = false;
  fx.advance(15s);
  auto st = fx.status_of("w1");
  bool ok = fx.world.workers["w1"].running
            && fx.world.workers["w1"].pid != first_pid && st.restarts == 1
            && fx.events(cyme::event_kind::restarted, "w1") == 1;
  std::cout << (ok ? "ok" : "FAILED") << ": w1 pid " << first_pid << " -> "
            << fx.world.workers["w1"].pid << ", " << st.restarts
            << " restart(s), state " << to_string(st.state) << "\n";
  return ok ? 0 : 1;
}
