// carrier sendmail -bs: the SMTP session state machine (RFC 5321 4.1.1 commands, 4.1.4 order,
// 4.5.2 dot rules, 4.5.3.1 limits; RFC 1870 SIZE; RFC 6152 8BITMIME; RFC 6531 SMTPUTF8;
// RFC 2034 enhanced status codes). Pure; UNTRUSTED input; bounded.
#include "sendmail/smtp.hpp"

#include <variant>

#include "proto/command.hpp"

namespace carrier::sendmail {

namespace {

// "TO:<Postmaster>" (any case, optional space after the colon, nothing after the path).
bool is_postmaster(std::string_view arg) {
  auto lower = [](std::string_view s) {
    std::string o(s);
    for (char& c : o)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return o;
  };
  std::string a = lower(arg);
  while (!a.empty() && (a.back() == ' ' || a.back() == '\t')) a.pop_back();
  return a == "to:<postmaster>" || a == "to: <postmaster>";
}

}  // namespace

SmtpSubmit::SmtpSubmit(SmtpOptions opts) : opts_(std::move(opts)) {
  opts_.build.smtp_data = true;
  opts_.build.extract_recipients = false;
}

std::string SmtpSubmit::greeting() const {
  return "220 " + opts_.hostname + " ESMTP carrier (sendmail -bs)\r\n";
}

void SmtpSubmit::reset() {
  have_mail_ = false;
  sender_ = {};
  smtputf8_ = false;
  rcpts_.clear();
  content_.clear();
  content_.shrink_to_fit();
  builder_.reset();
  too_big_ = false;
}

std::string SmtpSubmit::stored(bool ok, std::string_view text) {
  reset();
  if (ok) return "250 2.0.0 Ok: queued as " + std::string(text) + "\r\n";
  return "451 4.3.0 Error: message not stored: " + std::string(text) + "\r\n";
}

SmtpSubmit::Step SmtpSubmit::feed(std::string_view in) {
  Step st;
  if (phase_ == Phase::Data) {
    const std::size_t used = builder_->feed(in, content_);
    st.consumed = used;
    if (content_.size() > opts_.max_size) {
      too_big_ = true;  // keep reading to the end of the data, keep nothing
      content_.clear();
    }
    if (!builder_->ended()) return st;
    phase_ = Phase::Command;
    if (!builder_->failed()) builder_->finish(content_);
    if (builder_->failed()) {
      st.reply = "554 5.6.0 Error: " + builder_->error() + "\r\n";
      reset();
    } else if (too_big_ || content_.size() > opts_.max_size) {
      st.reply = "552 5.3.4 Error: message too large (limit " + std::to_string(opts_.max_size) +
                 " bytes)\r\n";
      reset();
    } else {
      st.message_ready = true;
    }
    return st;
  }
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '\n') {
      if (line_.size() < opts_.max_line) line_.push_back(in[i]);
      else line_too_long_ = true;
      continue;
    }
    st.consumed = i + 1;
    if (!line_.empty() && line_.back() == '\r') line_.pop_back();
    if (line_too_long_) st.reply = "500 5.5.2 Error: line too long\r\n";
    else st.reply = command(line_);
    line_.clear();
    line_too_long_ = false;
    if (st.reply.substr(0, 4) == "221 ") st.quit = true;
    return st;
  }
  st.consumed = in.size();
  return st;
}

std::string SmtpSubmit::command(std::string_view line) {
  using proto::Verb;
  const proto::Command cmd = proto::parse_command(line);
  proto::Extensions ext;
  ext.size = true;
  ext.max_size = opts_.max_size;
  ext.eightbitmime = true;
  ext.smtputf8 = true;
  ext.chunking = false;
  ext.dsn = false;
  ext.auth = false;
  switch (cmd.verb) {
    case Verb::Helo:
    case Verb::Ehlo: {
      if (!proto::valid_helo_arg(cmd.arg)) return "501 5.5.4 Syntax: " + std::string(cmd.name) + " hostname\r\n";
      reset();  // RFC 5321 4.1.4: EHLO/HELO resets the transaction
      if (cmd.verb == Verb::Helo) return "250 " + opts_.hostname + "\r\n";
      return "250-" + opts_.hostname + "\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-SIZE " +
             std::to_string(opts_.max_size) + "\r\n250 ENHANCEDSTATUSCODES\r\n";
    }
    case Verb::Mail: {
      if (have_mail_) return "503 5.5.1 Error: nested MAIL command\r\n";
      auto r = proto::parse_mail(cmd.arg, ext);
      if (auto* rep = std::get_if<proto::Reply>(&r)) return rep->render();
      auto& m = std::get<proto::MailFrom>(r);
      have_mail_ = true;
      sender_ = m.sender;
      smtputf8_ = m.params.smtputf8;
      return "250 2.1.0 Ok\r\n";
    }
    case Verb::Rcpt: {
      if (!have_mail_) return "503 5.5.1 Error: need MAIL command\r\n";
      if (rcpts_.size() >= opts_.max_recipients) return "452 4.5.3 Error: too many recipients\r\n";
      auto r = proto::parse_rcpt(cmd.arg, ext, smtputf8_);
      if (std::holds_alternative<proto::Reply>(r) && is_postmaster(cmd.arg)) {
        // RFC 5321 4.5.1: "<Postmaster>" without a domain is always accepted.
        rcpts_.push_back(proto::Mailbox{"postmaster", opts_.hostname});
        return "250 2.1.5 Ok\r\n";
      }
      if (auto* rep = std::get_if<proto::Reply>(&r)) return rep->render();
      rcpts_.push_back(std::get<proto::RcptTo>(r).rcpt);
      return "250 2.1.5 Ok\r\n";
    }
    case Verb::Data: {
      if (!have_mail_) return "503 5.5.1 Error: need MAIL command\r\n";
      if (rcpts_.empty()) return "554 5.5.1 Error: no valid recipients\r\n";
      if (!cmd.arg.empty()) return "501 5.5.4 Syntax: DATA\r\n";
      BuildOptions b = opts_.build;
      if (b.from_address.empty()) b.from_address = sender_.str();
      builder_ = std::make_unique<MessageBuilder>(b);
      content_.clear();
      phase_ = Phase::Data;
      return "354 End data with <CR><LF>.<CR><LF>\r\n";
    }
    case Verb::Rset:
      reset();
      return "250 2.0.0 Ok\r\n";
    case Verb::Noop:
      return "250 2.0.0 Ok\r\n";
    case Verb::Quit:
      return "221 2.0.0 Bye\r\n";
    case Verb::Vrfy:
      return "252 2.5.2 Cannot VRFY user; send the message and it will be delivered\r\n";
    case Verb::Help:
      return "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP\r\n";
    case Verb::Bdat:
    case Verb::Expn:
    case Verb::StartTls:
    case Verb::Auth:
      return "502 5.5.1 Error: command not implemented\r\n";
    case Verb::Unknown:
      break;
  }
  return "500 5.5.2 Error: command not recognized\r\n";
}

}  // namespace carrier::sendmail
