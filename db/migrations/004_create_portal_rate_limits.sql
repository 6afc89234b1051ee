-- Up Migration
-- The shared Portal rate limit (activities/portal-rate-limiter.ts): one row per route group
-- (portal-enclave, portal-client) counting the requests of the current fixed window across every
-- worker process. The layout is the one rate-limiter-flexible's RateLimiterPostgres expects:
--   key:    the route group;
--   points: requests taken in the window;
--   expire: when the window ends, in milliseconds since the epoch.
CREATE TABLE portal_rate_limits (
  key     varchar(255) PRIMARY KEY,
  points  integer      NOT NULL DEFAULT 0,
  expire  bigint
);
