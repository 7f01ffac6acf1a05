// cyme-sim-instance: the stand-in process of one simulated instance in the
// fleet benchmark (bench/run.sh). The branch starts it with a worker's
// command line; it exists, holds no Kafka client and does nothing, while
// cyme-fleet-sim answers the control protocol in its name. SIGTERM and
// SIGKILL end it as they end a worker. Linked statically, so 10,000 of them
// cost little more than their kernel bookkeeping.
#include <unistd.h>

int main() {
  for (;;)
    ::pause();
}
