#include "session/server_session.hpp"
