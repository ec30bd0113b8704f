#!/bin/sh
# The redis container's entrypoint (compose: entrypoint ["sh", "/etc/redis/start.sh"]):
# render the users file from the secrets, then hand over to the image's entrypoint,
# which drops root and runs redis-server with deploy/redis/redis.conf.
set -eu
here=$(dirname "$0")
sh "$here/render-acl.sh" "$here/users.acl" "${REDIS_SECRETS_DIR:-/run/secrets}" /run/redis/users.acl
if [ "$(id -u)" = 0 ]; then chown -R redis:redis /run/redis; fi
exec docker-entrypoint.sh redis-server "$here/redis.conf" "$@"
