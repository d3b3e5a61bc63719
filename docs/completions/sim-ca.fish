# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_sim_ca_global_optspecs
    string join \n h/help V/version
end

function __fish_sim_ca_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_sim_ca_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_sim_ca_using_subcommand
    set -l cmd (__fish_sim_ca_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c sim-ca -n "__fish_sim_ca_needs_command" -s h -l help -d 'Print help'
complete -c sim-ca -n "__fish_sim_ca_needs_command" -s V -l version -d 'Print version'
complete -c sim-ca -n "__fish_sim_ca_needs_command" -f -a "serve" -d 'Serve EST (/.well-known/est/...) and CMC (/cmc) over HTTPS with client certificates'
complete -c sim-ca -n "__fish_sim_ca_needs_command" -f -a "credential" -d 'Issue a key and a certificate for a gateway (its RA identity toward this CA, or its TLS server certificate): writes PREFIX.pem (certificate, then the issuing CA) and PREFIX.key'
complete -c sim-ca -n "__fish_sim_ca_needs_command" -f -a "issue" -d 'Issue a certificate for a PKCS#10 (the initial enrollment an administrator does)'
complete -c sim-ca -n "__fish_sim_ca_needs_command" -f -a "pending" -d 'List, approve or deny pending requests'
complete -c sim-ca -n "__fish_sim_ca_needs_command" -f -a "revoke" -d 'Revoke a certificate by serial number (hex)'
complete -c sim-ca -n "__fish_sim_ca_needs_command" -f -a "audit" -d 'Print the audit trail: every decision, oldest first'
complete -c sim-ca -n "__fish_sim_ca_needs_command" -f -a "templates" -d 'List the templates (built-in, or a scenario\'s)'
complete -c sim-ca -n "__fish_sim_ca_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand serve" -l mode -d '`sim` (or `ca`): the simulated CA (issues itself; scenarios, dispositions, faults; with `--trust-ra`, the CA behind a gateway). `gateway`: the renewal gateway in front of an upstream CA, configured by `--config`' -r -f -a "sim\t'The simulated CA (`ca` too: with `--trust-ra` it is the CA behind a gateway)'
gateway\t'The renewal gateway'"
complete -c sim-ca -n "__fish_sim_ca_using_subcommand serve" -l config -d 'The gateway\'s TOML configuration (`--mode gateway`)' -r -F
complete -c sim-ca -n "__fish_sim_ca_using_subcommand serve" -l listen -d 'HTTPS address' -r
complete -c sim-ca -n "__fish_sim_ca_using_subcommand serve" -l state -d 'State directory (CA keys and certificates, SQLite database); created on first run' -r -F
complete -c sim-ca -n "__fish_sim_ca_using_subcommand serve" -l store -d 'Where the CA\'s state lives instead of `<state>/ca.db`: a SQLite file, or a `postgres://` URL shared by several instances (the keys stay in `--state`)' -r
complete -c sim-ca -n "__fish_sim_ca_using_subcommand serve" -l scenario -d 'Scenario file (TOML): templates, disposition rules, faults' -r -F
complete -c sim-ca -n "__fish_sim_ca_using_subcommand serve" -l admin -d 'Admin API address (plain HTTP; keep it on loopback)' -r
complete -c sim-ca -n "__fish_sim_ca_using_subcommand serve" -l trust-ra -d 'Trust this certificate (PEM; the first one of the file) as a registration authority: a renewal gateway that forwards users\' signed requests inside its own signed wrapper, or their PKCS#10 for a subject it validated (repeatable)' -r -F
complete -c sim-ca -n "__fish_sim_ca_using_subcommand serve" -l cmp-confirm-wait -d 'Seconds a certificate issued over CMP without implicit confirmation waits for the client\'s certConf before it is revoked (RFC 4210 §5.3.18)' -r
complete -c sim-ca -n "__fish_sim_ca_using_subcommand serve" -l tls-resumption -d 'Whether a client may resume its TLS session (`off`: every connection costs the card a signature, and a PIN-always key a prompt; nothing outside the card stands in for it). A gateway says it in its configuration (`[tls] resumption`)' -r -f -a "on\t''
off\t''"
complete -c sim-ca -n "__fish_sim_ca_using_subcommand serve" -l max-connections -d 'Connections served at once; more wait in the kernel\'s accept queue until one ends. A gateway says it in its configuration (`[limits] max_connections`)' -r
complete -c sim-ca -n "__fish_sim_ca_using_subcommand serve" -l max-connections-per-address -d 'Connections one client address (an IPv6 client: its /64) may hold at once; past it, its new connections are closed at once. 0 (the default): no such cap — behind a load balancer every client has one address. A gateway says it in its configuration (`[limits] max_connections_per_address`)' -r
complete -c sim-ca -n "__fish_sim_ca_using_subcommand serve" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand credential" -l state -d 'State directory' -r -F
complete -c sim-ca -n "__fish_sim_ca_using_subcommand credential" -l cn -d 'The certificate\'s common name' -r
complete -c sim-ca -n "__fish_sim_ca_using_subcommand credential" -l name -d 'DNS names or IP addresses for its subjectAltName (repeatable)' -r
complete -c sim-ca -n "__fish_sim_ca_using_subcommand credential" -l out -d 'Output prefix' -r -F
complete -c sim-ca -n "__fish_sim_ca_using_subcommand credential" -l tls-server -d 'A TLS server certificate (serverAuth) instead of an RA\'s (clientAuth and id-kp-cmcRA: it authenticates to the CA and signs the answers to clients)'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand credential" -s h -l help -d 'Print help'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand issue" -l state -d 'State directory' -r -F
complete -c sim-ca -n "__fish_sim_ca_using_subcommand issue" -l csr -d 'The request (PEM or DER)' -r -F
complete -c sim-ca -n "__fish_sim_ca_using_subcommand issue" -l template -d 'Template name or OID' -r
complete -c sim-ca -n "__fish_sim_ca_using_subcommand issue" -l days -d 'Validity in days (default: the template\'s)' -r
complete -c sim-ca -n "__fish_sim_ca_using_subcommand issue" -l out -d 'Where to write the certificate (PEM)' -r -F
complete -c sim-ca -n "__fish_sim_ca_using_subcommand issue" -s h -l help -d 'Print help'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand pending; and not __fish_seen_subcommand_from list approve deny help" -s h -l help -d 'Print help'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand pending; and not __fish_seen_subcommand_from list approve deny help" -f -a "list" -d 'List pending requests'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand pending; and not __fish_seen_subcommand_from list approve deny help" -f -a "approve" -d 'Approve one'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand pending; and not __fish_seen_subcommand_from list approve deny help" -f -a "deny" -d 'Deny one'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand pending; and not __fish_seen_subcommand_from list approve deny help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand pending; and __fish_seen_subcommand_from list" -l state -d 'State directory' -r -F
complete -c sim-ca -n "__fish_sim_ca_using_subcommand pending; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand pending; and __fish_seen_subcommand_from approve" -l state -d 'State directory' -r -F
complete -c sim-ca -n "__fish_sim_ca_using_subcommand pending; and __fish_seen_subcommand_from approve" -s h -l help -d 'Print help'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand pending; and __fish_seen_subcommand_from deny" -l state -d 'State directory' -r -F
complete -c sim-ca -n "__fish_sim_ca_using_subcommand pending; and __fish_seen_subcommand_from deny" -s h -l help -d 'Print help'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand pending; and __fish_seen_subcommand_from help" -f -a "list" -d 'List pending requests'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand pending; and __fish_seen_subcommand_from help" -f -a "approve" -d 'Approve one'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand pending; and __fish_seen_subcommand_from help" -f -a "deny" -d 'Deny one'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand pending; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand revoke" -l state -d 'State directory' -r -F
complete -c sim-ca -n "__fish_sim_ca_using_subcommand revoke" -s h -l help -d 'Print help'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand audit" -l state -d 'State directory' -r -F
complete -c sim-ca -n "__fish_sim_ca_using_subcommand audit" -l json -d 'One JSON array instead of a table'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand audit" -s h -l help -d 'Print help'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand templates" -l scenario -d 'Scenario file' -r -F
complete -c sim-ca -n "__fish_sim_ca_using_subcommand templates" -s h -l help -d 'Print help'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand help; and not __fish_seen_subcommand_from serve credential issue pending revoke audit templates help" -f -a "serve" -d 'Serve EST (/.well-known/est/...) and CMC (/cmc) over HTTPS with client certificates'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand help; and not __fish_seen_subcommand_from serve credential issue pending revoke audit templates help" -f -a "credential" -d 'Issue a key and a certificate for a gateway (its RA identity toward this CA, or its TLS server certificate): writes PREFIX.pem (certificate, then the issuing CA) and PREFIX.key'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand help; and not __fish_seen_subcommand_from serve credential issue pending revoke audit templates help" -f -a "issue" -d 'Issue a certificate for a PKCS#10 (the initial enrollment an administrator does)'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand help; and not __fish_seen_subcommand_from serve credential issue pending revoke audit templates help" -f -a "pending" -d 'List, approve or deny pending requests'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand help; and not __fish_seen_subcommand_from serve credential issue pending revoke audit templates help" -f -a "revoke" -d 'Revoke a certificate by serial number (hex)'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand help; and not __fish_seen_subcommand_from serve credential issue pending revoke audit templates help" -f -a "audit" -d 'Print the audit trail: every decision, oldest first'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand help; and not __fish_seen_subcommand_from serve credential issue pending revoke audit templates help" -f -a "templates" -d 'List the templates (built-in, or a scenario\'s)'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand help; and not __fish_seen_subcommand_from serve credential issue pending revoke audit templates help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand help; and __fish_seen_subcommand_from pending" -f -a "list" -d 'List pending requests'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand help; and __fish_seen_subcommand_from pending" -f -a "approve" -d 'Approve one'
complete -c sim-ca -n "__fish_sim_ca_using_subcommand help; and __fish_seen_subcommand_from pending" -f -a "deny" -d 'Deny one'
