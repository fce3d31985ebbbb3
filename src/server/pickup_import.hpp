// carrier server: imports what `carrier sendmail` left in DATA_DIR/pickup into the spool, at
// start and then every second, whether the daemon was running when it was written or not.
// Each message gets carrier's Received: ("by HOST (carrier sendmail, uid N) id ID") and is
// committed durably before its pickup file is removed, so a crash in between at worst
// imports it twice, never loses it. Recipients are checked with the same policy as SMTP
// (local users and aliases; any other domain is relayed: the local user is trusted like an
// authenticated one); one the policy refuses (an unknown local user) bounces to the sender
// with the policy's reply, as Postfix does for mail submitted with sendmail.
#pragma once
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "queue/delivery.hpp"
#include "queue/trace.hpp"
#include "session/server_session.hpp"
#include "spool/pickup.hpp"
#include "spool/spool.hpp"

namespace carrier::server {

class PickupImport {
 public:
  PickupImport(spool::Pickup pickup, spool::Spool& spool, const session::RecipientChecker& rcpts,
               queue::Delivery& delivery, queue::TraceLog* trace, std::string hostname);
  ~PickupImport();  // stop()
  void start();
  void stop();
  // Imports everything present now (the thread calls it every second). Returns how many.
  int run_once();

 private:
  void loop();
  bool import(const std::string& name);

  spool::Pickup pickup_;
  spool::Spool& spool_;
  const session::RecipientChecker& rcpts_;
  queue::Delivery& delivery_;
  queue::TraceLog* trace_;
  std::string hostname_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace carrier::server
