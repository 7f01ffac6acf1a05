// cyme-worker: one instance of a fleet, with the built-in handlers.
#include "worker/worker.hpp"

int main(int argc, char** argv) {
  return cyme::worker::run_worker_main(argc, argv, {});
}
