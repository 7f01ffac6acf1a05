// cyme-embedded-kafka: hosts librdkafka's mock cluster (a real Kafka
// protocol endpoint on loopback, in memory) in a process of its own, so it
// outlives the programs that use it. Prints the bootstrap address, and
// writes it to --bootstrap-file when given. Runs until SIGTERM or SIGINT.
// SIGUSR1 takes broker 1 down and SIGUSR2 brings it back (fault drills).
//
// --ports puts the brokers on given loopback ports: a branch that starts
// the cluster again after it died asks for the ports it had, so every
// client (the branch's and its workers') finds it at the same address.
#include <dlfcn.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <csignal>
#include <cstdio>
#include <deque>
#include <fstream>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "messages/version.hpp"
#include "transport/kafka.hpp"

namespace {

/// The ports the next listeners take, in the order the brokers are made.
std::mutex wanted_mtx;
std::deque<uint16_t> wanted_ports;

/// Whether a listener could take `port` on loopback now. Asked first: the
/// mock cluster aborts the process when a listener cannot bind.
std::string port_problem(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return std::strerror(errno);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in in{};
  in.sin_family = AF_INET;
  in.sin_port = htons(port);
  in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string problem;
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&in), sizeof in) != 0)
    problem = std::strerror(errno);
  ::close(fd);
  return problem;
}

} // namespace

// librdkafka's mock cluster binds each broker's listener to 127.0.0.1 port
// 0 and offers no way to choose the port. This program is the only user of
// bind in its process besides those listeners, so it stands in for libc's
// bind: a loopback bind to port 0 takes the next wanted port instead (with
// SO_REUSEADDR, so connections of the cluster that died, left in
// TIME_WAIT, do not hold it), and every other bind is libc's own.
extern "C" int bind(int fd, const struct sockaddr* addr, socklen_t len) {
  using bind_fn = int (*)(int, const struct sockaddr*, socklen_t);
  static auto libc_bind = reinterpret_cast<bind_fn>(dlsym(RTLD_NEXT, "bind"));
  if (libc_bind == nullptr) {
    errno = ENOSYS;
    return -1;
  }
  if (addr != nullptr && addr->sa_family == AF_INET
      && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    sockaddr_in in{};
    std::memcpy(&in, addr, sizeof in);
    if (in.sin_port == 0 && in.sin_addr.s_addr == htonl(INADDR_LOOPBACK)) {
      std::lock_guard<std::mutex> guard{wanted_mtx};
      if (!wanted_ports.empty()) {
        in.sin_port = htons(wanted_ports.front());
        wanted_ports.pop_front();
        int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        return libc_bind(fd, reinterpret_cast<const sockaddr*>(&in), sizeof in);
      }
    }
  }
  return libc_bind(fd, addr, len);
}

int main(int argc, char** argv) {
  CLI::App app{"cyme-embedded-kafka: an in-memory Kafka cluster on loopback"};
  int brokers = 1;
  std::string bootstrap_file;
  std::vector<int> ports;
  app.add_option("--brokers", brokers, "number of brokers")
    ->check(CLI::Range(1, 9));
  app.add_option("--ports", ports,
                 "loopback ports of the brokers, one per broker, in order "
                 "(default: ports the system picks)")
    ->delimiter(',')
    ->check(CLI::Range(1, 65535));
  app.add_option("--bootstrap-file", bootstrap_file,
                 "write the bootstrap address to this file (atomically)");
  app.set_version_flag("--version", cyme::version_text("cyme-embedded-kafka"));
  CLI11_PARSE(app, argc, argv);
  if (!ports.empty() && static_cast<int>(ports.size()) != brokers) {
    std::cerr << "cyme-embedded-kafka: --ports names " << ports.size()
              << " ports for " << brokers << " brokers\n";
    return 2;
  }
  for (int port : ports) {
    if (auto problem = port_problem(static_cast<uint16_t>(port));
        !problem.empty()) {
      std::cerr << "cyme-embedded-kafka: cannot listen on 127.0.0.1:" << port
                << ": " << problem << "\n";
      return 1;
    }
  }
  for (int port : ports)
    wanted_ports.push_back(static_cast<uint16_t>(port));

  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGUSR1, SIGUSR2})
    sigaddset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  try {
    cyme::kafka::embedded_cluster cluster{brokers};
    if (!ports.empty()) {
      // A port that could not be had leaves its broker without a listener
      // (the mock logs why): say so rather than serve on a wrong address.
      std::string want;
      for (int port : ports)
        want += (want.empty() ? "" : ",") + std::string{"127.0.0.1:"}
                + std::to_string(port);
      if (cluster.bootstrap() != want) {
        std::cerr << "cyme-embedded-kafka: cannot listen on " << want
                  << " (got '" << cluster.bootstrap() << "')\n";
        return 1;
      }
    }
    if (!bootstrap_file.empty()) {
      auto tmp = bootstrap_file + ".tmp";
      {
        std::ofstream out{tmp, std::ios::trunc};
        out << cluster.bootstrap() << "\n";
        if (!out) {
          std::cerr << "cyme-embedded-kafka: cannot write " << tmp << "\n";
          return 1;
        }
      }
      if (std::rename(tmp.c_str(), bootstrap_file.c_str()) != 0) {
        std::cerr << "cyme-embedded-kafka: cannot write " << bootstrap_file
                  << "\n";
        return 1;
      }
    }
    std::cout << cluster.bootstrap() << std::endl;
    for (;;) {
      int sig = 0;
      sigwait(&set, &sig);
      if (sig == SIGUSR1) {
        cluster.set_broker_down(1);
        std::cerr << "cyme-embedded-kafka: broker 1 down\n";
      } else if (sig == SIGUSR2) {
        cluster.set_broker_up(1);
        std::cerr << "cyme-embedded-kafka: broker 1 up\n";
      } else {
        break;
      }
    }
  } catch (const std::exception& e) {
    std::cerr << "cyme-embedded-kafka: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
