#!/bin/sh
# Render the Redis users file: copy TEMPLATE to OUT with every `#{<user>}` replaced by
# `#` + the SHA-256 of the password in SECRETS_DIR/redis_<user>_password (the file's
# content without its trailing newlines, as the services read it), and without the
# comment lines. No password is written anywhere; a missing or empty password file is
# an error.
#   usage: render-acl.sh TEMPLATE SECRETS_DIR OUT
set -eu
template=$1 secrets=$2 out=$3
names=$(grep -o '#{[a-z_]*}' "$template" | sort -u | tr -d '#{}')
[ -n "$names" ] || { echo "render-acl: no #{<user>} placeholder in $template" >&2; exit 1; }
script=""
for name in $names; do
    file="$secrets/redis_${name}_password"
    [ -r "$file" ] || { echo "render-acl: cannot read $file (the $name user's password)" >&2; exit 1; }
    password=$(cat "$file")
    [ -n "$password" ] || { echo "render-acl: $file is empty" >&2; exit 1; }
    hash=$(printf '%s' "$password" | sha256sum | cut -d' ' -f1)
    script="${script}s/#{${name}}/#${hash}/g;"
done
mkdir -p "$(dirname "$out")"
umask 077
# Redis's ACL file has no comments: the template's (lines starting with #) are left out.
sed -e '/^#/d' -e '/^[[:space:]]*$/d' -e "$script" "$template" > "$out.tmp"
mv "$out.tmp" "$out"
echo "render-acl: $out has the users of $template ($(echo $names | tr '\n' ' '))"
