// carrier metrics tests: a strict parser of the Prometheus text exposition format 0.0.4, so
// the tests read back what the registry wrote instead of searching for substrings. It checks
// the rules of the format: "# HELP name text" and "# TYPE name type" come before a family's
// samples, at most once each; sample lines are name{label="value",...} value, with label values
// escaped (\\ \" \n only); histogram buckets are cumulative and end with le="+Inf" equal to
// _count. Test-only code; input is what the code under test produced.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace carrier::metrics::test {

struct ParsedSample {
  std::string name;
  std::map<std::string, std::string> labels;  // unescaped values
  double value = 0;
};

struct Parsed {
  std::map<std::string, std::string> type;  // family -> counter|gauge|histogram|...
  std::map<std::string, std::string> help;  // family -> unescaped help
  std::vector<ParsedSample> samples;
  std::vector<std::string> errors;
  // The value of the sample with exactly these labels, if present.
  std::optional<double> get(const std::string& name,
                            const std::map<std::string, std::string>& labels = {}) const {
    for (const auto& s : samples)
      if (s.name == name && s.labels == labels) return s.value;
    return std::nullopt;
  }
};

inline bool name_char(char c, bool first) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
         (!first && c >= '0' && c <= '9');
}

inline std::optional<double> parse_number(const std::string& v) {
  if (v == "+Inf") return HUGE_VAL;
  if (v == "-Inf") return -HUGE_VAL;
  if (v == "NaN") return NAN;
  std::size_t used = 0;
  try {
    double d = std::stod(v, &used);
    if (used != v.size()) return std::nullopt;
    return d;
  } catch (...) {
    return std::nullopt;
  }
}

// The family a sample name belongs to (histogram series carry a suffix).
inline std::string family_of(const std::string& name, const std::map<std::string, std::string>& type) {
  if (type.count(name)) return name;
  for (const char* suffix : {"_bucket", "_sum", "_count"}) {
    const std::string s(suffix);
    if (name.size() > s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0) {
      std::string base = name.substr(0, name.size() - s.size());
      if (type.count(base)) return base;
    }
  }
  return "";
}

inline Parsed parse_exposition(const std::string& text) {
  Parsed p;
  if (!text.empty() && text.back() != '\n') p.errors.push_back("text does not end with a newline");
  std::istringstream in(text);
  std::string line;
  std::map<std::string, bool> has_samples;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      const bool is_help = line[2] == 'H';
      std::string rest = line.substr(7);
      auto sp = rest.find(' ');
      std::string name = rest.substr(0, sp);
      std::string arg = sp == std::string::npos ? "" : rest.substr(sp + 1);
      auto& table = is_help ? p.help : p.type;
      if (table.count(name)) p.errors.push_back("second " + line.substr(0, 6) + " for " + name);
      if (has_samples[name]) p.errors.push_back("HELP/TYPE after samples of " + name);
      if (is_help) {
        std::string h;
        for (std::size_t i = 0; i < arg.size(); ++i) {
          if (arg[i] == '\\' && i + 1 < arg.size()) {
            ++i;
            if (arg[i] == 'n') h += '\n';
            else if (arg[i] == '\\') h += '\\';
            else p.errors.push_back("bad escape in HELP of " + name);
          } else {
            h += arg[i];
          }
        }
        table[name] = h;
      } else {
        if (arg != "counter" && arg != "gauge" && arg != "histogram" && arg != "summary" &&
            arg != "untyped")
          p.errors.push_back("bad TYPE " + arg);
        table[name] = arg;
      }
      continue;
    }
    if (line[0] == '#') continue;  // a comment
    ParsedSample s;
    std::size_t i = 0;
    while (i < line.size() && name_char(line[i], i == 0)) ++i;
    s.name = line.substr(0, i);
    if (s.name.empty()) {
      p.errors.push_back("no metric name: " + line);
      continue;
    }
    bool ok = true;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (ok && i < line.size() && line[i] != '}') {
        std::size_t st = i;
        while (i < line.size() && name_char(line[i], i == st) && line[i] != ':') ++i;
        std::string lname = line.substr(st, i - st);
        if (lname.empty() || i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') {
          ok = false;
          break;
        }
        i += 2;
        std::string v;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\') {
            if (i + 1 >= line.size()) {
              ok = false;
              break;
            }
            char e = line[i + 1];
            if (e == 'n') v += '\n';
            else if (e == '\\') v += '\\';
            else if (e == '"') v += '"';
            else ok = false;
            i += 2;
          } else {
            v += line[i++];
          }
        }
        if (i >= line.size()) ok = false;
        if (!ok) break;
        ++i;  // closing quote
        if (s.labels.count(lname)) ok = false;
        s.labels[lname] = v;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size() || line[i] != '}') ok = false;
      else ++i;
    }
    if (!ok || i >= line.size() || line[i] != ' ') {
      p.errors.push_back("malformed sample: " + line);
      continue;
    }
    std::string rest = line.substr(i + 1);
    if (auto sp = rest.find(' '); sp != std::string::npos) rest = rest.substr(0, sp);  // timestamp
    auto v = parse_number(rest);
    if (!v) {
      p.errors.push_back("bad value: " + line);
      continue;
    }
    s.value = *v;
    std::string fam = family_of(s.name, p.type);
    if (fam.empty()) p.errors.push_back("sample without a TYPE before it: " + line);
    has_samples[fam.empty() ? s.name : fam] = true;
    p.samples.push_back(std::move(s));
  }
  // Histograms: cumulative buckets, +Inf == _count, per label set.
  for (const auto& [fam, t] : p.type) {
    if (t != "histogram") continue;
    std::map<std::map<std::string, std::string>, std::vector<std::pair<double, double>>> buckets;
    for (const auto& s : p.samples) {
      if (s.name != fam + "_bucket") continue;
      auto labels = s.labels;
      auto le = labels.find("le");
      if (le == labels.end()) {
        p.errors.push_back(fam + "_bucket without le");
        continue;
      }
      auto bound = parse_number(le->second);
      labels.erase(le);
      buckets[labels].emplace_back(bound.value_or(NAN), s.value);
    }
    for (auto& [labels, bs] : buckets) {
      for (std::size_t k = 1; k < bs.size(); ++k)
        if (!(bs[k].first > bs[k - 1].first) || bs[k].second < bs[k - 1].second)
          p.errors.push_back(fam + ": buckets not increasing/cumulative");
      if (bs.empty() || !std::isinf(bs.back().first)) p.errors.push_back(fam + ": no +Inf bucket");
      auto count = p.get(fam + "_count", labels);
      if (!count || bs.empty() || *count != bs.back().second)
        p.errors.push_back(fam + ": +Inf bucket differs from _count");
      if (!p.get(fam + "_sum", labels)) p.errors.push_back(fam + ": no _sum");
    }
  }
  return p;
}

inline std::string dump_errors(const Parsed& p) {
  std::string s;
  for (const auto& e : p.errors) s += "  " + e + "\n";
  return s;
}

}  // namespace carrier::metrics::test
