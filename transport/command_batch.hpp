#pragma once

/// Commands for one instance each, gathered to go out as one command per
/// kind: what the control bus does with an instance's own commands (a
/// start's pings, its stats, its consumer changes), so that a fleet that
/// starts at once costs a few commands on the bus, not several per
/// instance. Two commands share a batch when they ask the same thing (op,
/// queue, concurrency, timeout); an instance asked twice is named once and
/// its reply goes to both callers. `Caller` is whoever waits for a reply
/// (a response promise in the bus; anything in tests).

#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "messages/control.hpp"

namespace cyme {

template <class Caller>
class command_batch {
public:
  /// One command for many instances, and each instance's callers.
  struct gathered {
    control_command command;
    std::multimap<std::string, Caller> callers;
  };

  /// Adds `cmd` (exactly one destination) and its caller.
  void add(const control_command& cmd, Caller caller) {
    waiting_[key{cmd.op, cmd.broker, cmd.queue, cmd.max_concurrency,
                 cmd.min_concurrency, cmd.timeout.count()}]
      .emplace_back(cmd.destinations.front(), std::move(caller));
  }

  bool empty() const {
    return waiting_.empty();
  }

  /// Everything added since the last take, one command per kind, each
  /// instance named once, in the order they came.
  std::vector<gathered> take() {
    std::vector<gathered> out;
    for (auto& [what, callers] : waiting_) {
      gathered g;
      std::tie(g.command.op, g.command.broker, g.command.queue,
               g.command.max_concurrency, g.command.min_concurrency,
               std::ignore)
        = what;
      g.command.timeout = caf::timespan{std::get<5>(what)};
      std::set<std::string> named;
      for (auto& [name, caller] : callers) {
        if (named.insert(name).second)
          g.command.destinations.push_back(name);
        g.callers.emplace(name, std::move(caller));
      }
      out.push_back(std::move(g));
    }
    waiting_.clear();
    return out;
  }

private:
  using key = std::tuple<control_op, std::string, std::string, uint32_t,
                         uint32_t, caf::timespan::rep>;
  std::map<key, std::vector<std::pair<std::string, Caller>>> waiting_;
};

} // namespace cyme
