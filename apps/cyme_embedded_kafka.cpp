// cyme-embedded-kafka: hosts librdkafka's mock cluster (a real Kafka
// protocol endpoint on loopback, in memory) in a process of its own, so it
// outlives the programs that use it. Prints the bootstrap address, and
// writes it to --bootstrap-file when given. Runs until SIGTERM or SIGINT.
// SIGUSR1 takes broker 1 down and SIGUSR2 brings it back (fault drills).
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "transport/kafka.hpp"

int main(int argc, char** argv) {
  CLI::App app{"cyme-embedded-kafka: an in-memory Kafka cluster on loopback"};
  int brokers = 1;
  std::string bootstrap_file;
  app.add_option("--brokers", brokers, "number of brokers")
    ->check(CLI::Range(1, 9));
  app.add_option("--bootstrap-file", bootstrap_file,
                 "write the bootstrap address to this file (atomically)");
  CLI11_PARSE(app, argc, argv);

  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGUSR1, SIGUSR2})
    sigaddset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  try {
    cyme::kafka::embedded_cluster cluster{brokers};
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
