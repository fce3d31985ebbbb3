#include "proto/command.hpp"
