# Shared set-up for test/run, demo/run and .ci/run (sourced, not executed).
# Everything here is idempotent: running it twice changes nothing the second time.

MDM_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Debian 12 packages the build, the tests and the demo need.
MDM_PACKAGES="postgresql-15 postgresql-server-dev-15 postgresql-common postgresql-15-cron
    libplist-dev libssl-dev pkg-config make gcc clang-14 libclang-rt-14-dev
    python3 python3-yaml openssl util-linux
    libpq-dev libmicrohttpd-dev libgnutls28-dev libsystemd-dev python3-jsonschema wrk curl
    libcurl4-openssl-dev libnghttp2-dev libjansson-dev python3-psycopg2
    debhelper postgresql-server-dev-all lintian"

mdm_require_root() {
    if [ "$(id -u)" -ne 0 ]; then
        echo "run this as root (it installs Debian packages and PostgreSQL extension files)" >&2
        exit 1
    fi
}

# Install whatever is missing from MDM_PACKAGES, and nothing else.
mdm_ensure_packages() {
    local missing="" p
    for p in $MDM_PACKAGES; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        echo "== installing Debian packages:$missing"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
}

# Build and install the extension; a lock lets the demo and the tests run at once.
# With MDM_STAGE=/dir the build is installed under /dir (make install
# DESTDIR=/dir) instead, and the throwaway clusters load it from there
# (Debian's extension_destdir), so several work trees can be tested at once
# without overwriting each other's installed copy.
mdm_build_install() {
    if [ -n "${MDM_STAGE:-}" ]; then
        echo "== building mdm_user and staging it under $MDM_STAGE"
        mkdir -p "$MDM_STAGE"
        MDM_STAGE=$(cd "$MDM_STAGE" && pwd)
        make -s -C "$MDM_ROOT" >/dev/null
        make -s -C "$MDM_ROOT" install DESTDIR="$MDM_STAGE" >/dev/null
        # '$libdir/mdm_user' would find an installed copy first: load the
        # staged library by name through dynamic_library_path instead
        sed -i "s|^module_pathname = .*|module_pathname = 'mdm_user'|" \
            "$MDM_STAGE$(pg_config --sharedir)/extension/mdm_user.control"
        export MDM_STAGE
        return
    fi
    echo "== building and installing mdm_user"
    flock /tmp/mdm_user-build.lock make -s -C "$MDM_ROOT" install >/dev/null
}

# Options that make a cluster load the staged build (empty without MDM_STAGE).
mdm_stage_options() {
    [ -n "${MDM_STAGE:-}" ] || return 0
    printf '%s\n' -o "extension_destdir=$MDM_STAGE" \
        -o "dynamic_library_path=$MDM_STAGE$(pg_config --pkglibdir):\$libdir"
}

# A TCP port nobody listens on, for a throwaway cluster.
mdm_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Run a command inside a throwaway cluster (pg_virtualenv -t: its own
# temporary directory, removed afterwards) with mdm_user and pg_cron
# preloaded, as docs/operations.md recommends.  With MDM_STAGE the bare
# name 'mdm_user' finds the staged library: the postmaster reads
# dynamic_library_path from the same configuration before it preloads.
# MDM_PRELOAD overrides the list (test/not_preloaded.sh runs with none).
mdm_with_cluster() {
    local stage_opts=()
    mapfile -t stage_opts < <(mdm_stage_options)
    PGPORT=$(mdm_free_port) pg_virtualenv -t "${stage_opts[@]}" \
        -o "shared_preload_libraries=${MDM_PRELOAD-mdm_user,pg_cron}" \
        -o cron.database_name=postgres \
        -o max_prepared_transactions=10 \
        "$@"
}
