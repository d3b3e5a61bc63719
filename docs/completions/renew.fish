# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_renew_global_optspecs
    string join \n h/help V/version
end

function __fish_renew_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_renew_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_renew_using_subcommand
    set -l cmd (__fish_renew_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c renew -n "__fish_renew_needs_command" -s h -l help -d 'Print help'
complete -c renew -n "__fish_renew_needs_command" -s V -l version -d 'Print version'
complete -c renew -n "__fish_renew_needs_command" -f -a "inspect" -d 'Print a readable tree of a CMC request or response, CMS-with-PKCS#10, certs-only PKCS#7, PKCS#10 or certificate (DER, PEM or base64; `-` reads stdin). Signatures are checked'
complete -c renew -n "__fish_renew_needs_command" -f -a "build-request" -d 'Build a CMC renewal request with software keys (for interop testing)'
complete -c renew -n "__fish_renew_needs_command" -f -a "run" -d 'Renew the certificate in a token\'s container against a CA'
complete -c renew -n "__fish_renew_needs_command" -f -a "policy" -d 'Ask an MS-XCEP policy service (CEP) for its templates and enrollment services, over the card-authenticated TLS'
complete -c renew -n "__fish_renew_needs_command" -f -a "status" -d 'Show the token\'s containers and the journal\'s state'
complete -c renew -n "__fish_renew_needs_command" -f -a "resume" -d 'Collect a pending request (also after a restart), then install it, or roll back on denial'
complete -c renew -n "__fish_renew_needs_command" -f -a "recover" -d 'After a crash at any point: restore exactly one valid certificate and no orphan container'
complete -c renew -n "__fish_renew_needs_command" -f -a "check" -d 'Renew every tracked certificate that is due, once (for cron and systemd timers). Exit code: 0 nothing due, 10 renewed, 3 pending at the CA, 4 failed or stuck (refused, CA unreachable, card absent; see `renew agent status`), 1 configuration unusable'
complete -c renew -n "__fish_renew_needs_command" -f -a "agent" -d 'Keep the tracked certificates renewed (long-running; `renew agent status` shows where each stands)'
complete -c renew -n "__fish_renew_needs_command" -f -a "sample" -d 'Create a throwaway CA, a certificate to renew and keys in DIR, build a renewal request for it and inspect it (the quick-start demo)'
complete -c renew -n "__fish_renew_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c renew -n "__fish_renew_using_subcommand inspect" -l json -d 'Print JSON instead of the tree'
complete -c renew -n "__fish_renew_using_subcommand inspect" -s h -l help -d 'Print help'
complete -c renew -n "__fish_renew_using_subcommand build-request" -l cert -d 'The certificate to renew (PEM or DER)' -r -F
complete -c renew -n "__fish_renew_using_subcommand build-request" -l key -d 'Its private key (PKCS#8, SEC1 or PKCS#1; PEM or DER)' -r -F
complete -c renew -n "__fish_renew_using_subcommand build-request" -l new-key -d 'The new private key' -r -F
complete -c renew -n "__fish_renew_using_subcommand build-request" -l template -d 'Template to request (OID or name); default: the one in the certificate' -r
complete -c renew -n "__fish_renew_using_subcommand build-request" -l transaction-id -d 'Fixed transactionId (default: random)' -r
complete -c renew -n "__fish_renew_using_subcommand build-request" -l nonce -d 'Fixed senderNonce in hex (default: 16 random bytes)' -r
complete -c renew -n "__fish_renew_using_subcommand build-request" -l digest -d 'CMS digest' -r -f -a "sha1\t''
sha256\t''
sha384\t''
sha512\t''"
complete -c renew -n "__fish_renew_using_subcommand build-request" -l out -d 'Output file (DER; `--pem` for PEM)' -r -F
complete -c renew -n "__fish_renew_using_subcommand build-request" -l pem -d 'Write PEM (`-----BEGIN CMS-----`) instead of DER'
complete -c renew -n "__fish_renew_using_subcommand build-request" -s h -l help -d 'Print help'
complete -c renew -n "__fish_renew_using_subcommand run" -l token -d '`sim:CARD.json` (the virtual card, in-process), `piv-pcsc[:READER]` (a PIV card in a PC/SC reader; feature `pcsc`) or `pkcs11:MODULE[:LABEL]` (a PKCS#11 token; feature `pkcs11`)' -r
complete -c renew -n "__fish_renew_using_subcommand run" -l container -d 'The container holding the certificate to renew' -r
complete -c renew -n "__fish_renew_using_subcommand run" -l pin-env -d 'Read the PIN from this environment variable (default: ask on the terminal)' -r
complete -c renew -n "__fish_renew_using_subcommand run" -l pin-fd -d 'Read the PIN from this file descriptor' -r
complete -c renew -n "__fish_renew_using_subcommand run" -l pin-file -d 'Read the PIN from the first line of this file (mode 0600 or stricter)' -r -F
complete -c renew -n "__fish_renew_using_subcommand run" -l pinentry -d 'Ask through this pinentry program (e.g. /usr/bin/pinentry-tty, pinentry-gnome3)' -r -F
complete -c renew -n "__fish_renew_using_subcommand run" -l management-key -d 'PIV management key: hex (32 digits AES-128, 48 AES-192 or 3DES, 64 AES-256; the card says which algorithm, or prefix `3des:`/`aes128:`/`aes192:`/`aes256:`), `pin-protected` (stored on the card under the PIN, as ykman\'s --protect leaves it) or `auto` (default: the PIN-protected key when the card has one, else the factory key)' -r
complete -c renew -n "__fish_renew_using_subcommand run" -l journal -d 'Journal file (default: ~/.cardrenew/journal-<card>-<container>.jsonl, one per card)' -r -F
complete -c renew -n "__fish_renew_using_subcommand run" -l retries -d 'Re-sends of the same request when its answer is lost (connection dropped, timeout, truncated answer, HTTP 5xx), waiting 2, 4, 8, 16 s (or the server\'s Retry-After, at most 30 s) before rolling back; 0 rolls back at once' -r
complete -c renew -n "__fish_renew_using_subcommand run" -l ca -d 'CA base URL, e.g. https://localhost:8443 (for `--mode wstep`: the CES URL)' -r
complete -c renew -n "__fish_renew_using_subcommand run" -l cep -d 'Find the enrollment service and template in this MS-XCEP policy service (the `..._CEP_Certificate/service.svc/CEP` URL): renews over MS-WSTEP at the CES URI the policy names for the certificate\'s template' -r
complete -c renew -n "__fish_renew_using_subcommand run" -l ca-cert -d 'The CA certificates to trust (PEM bundle; sim-ca writes ca-chain.pem)' -r -F
complete -c renew -n "__fish_renew_using_subcommand run" -l mode -d 'Protocol: fullcmc (EST), cmc (RFC 5273), simplereenroll (EST), wstep (ADCS CES) or cmp (RFC 4210 key update over RFC 6712 HTTPS)' -r
complete -c renew -n "__fish_renew_using_subcommand run" -l template -d 'Template to ask for (default: the certificate\'s)' -r
complete -c renew -n "__fish_renew_using_subcommand run" -l max-polls -d 'How many times to poll a pending request before leaving it for `renew resume` (at once when the CA asks to come back in more than an hour)' -r
complete -c renew -n "__fish_renew_using_subcommand run" -l json -d 'Print the outcome as JSON on stdout'
complete -c renew -n "__fish_renew_using_subcommand run" -l attest -d 'Attach the card\'s attestation of the new key to the request (a YubiKey\'s PIV attestation, in the PKCS#10 attribute of draft-ietf-lamps-csr-attestation), for a CA that renews only keys proven generated on the card. A card that cannot attest ends the attempt before anything is sent'
complete -c renew -n "__fish_renew_using_subcommand run" -l implicit-confirm -d 'With `--mode cmp`: ask the CA to skip the confirmation (`implicitConfirm`, RFC 4210 §5.1.1.1). A CA that grants it ends the exchange with the certificate; one that does not gets the usual `certConf`. Without it the client always confirms (or rejects) what it received'
complete -c renew -n "__fish_renew_using_subcommand run" -s h -l help -d 'Print help'
complete -c renew -n "__fish_renew_using_subcommand policy" -l token -d '`sim:CARD.json` (the virtual card, in-process), `piv-pcsc[:READER]` (a PIV card in a PC/SC reader; feature `pcsc`) or `pkcs11:MODULE[:LABEL]` (a PKCS#11 token; feature `pkcs11`)' -r
complete -c renew -n "__fish_renew_using_subcommand policy" -l container -d 'The container holding the certificate to renew' -r
complete -c renew -n "__fish_renew_using_subcommand policy" -l pin-env -d 'Read the PIN from this environment variable (default: ask on the terminal)' -r
complete -c renew -n "__fish_renew_using_subcommand policy" -l pin-fd -d 'Read the PIN from this file descriptor' -r
complete -c renew -n "__fish_renew_using_subcommand policy" -l pin-file -d 'Read the PIN from the first line of this file (mode 0600 or stricter)' -r -F
complete -c renew -n "__fish_renew_using_subcommand policy" -l pinentry -d 'Ask through this pinentry program (e.g. /usr/bin/pinentry-tty, pinentry-gnome3)' -r -F
complete -c renew -n "__fish_renew_using_subcommand policy" -l management-key -d 'PIV management key: hex (32 digits AES-128, 48 AES-192 or 3DES, 64 AES-256; the card says which algorithm, or prefix `3des:`/`aes128:`/`aes192:`/`aes256:`), `pin-protected` (stored on the card under the PIN, as ykman\'s --protect leaves it) or `auto` (default: the PIN-protected key when the card has one, else the factory key)' -r
complete -c renew -n "__fish_renew_using_subcommand policy" -l journal -d 'Journal file (default: ~/.cardrenew/journal-<card>-<container>.jsonl, one per card)' -r -F
complete -c renew -n "__fish_renew_using_subcommand policy" -l retries -d 'Re-sends of the same request when its answer is lost (connection dropped, timeout, truncated answer, HTTP 5xx), waiting 2, 4, 8, 16 s (or the server\'s Retry-After, at most 30 s) before rolling back; 0 rolls back at once' -r
complete -c renew -n "__fish_renew_using_subcommand policy" -l cep -d 'The CEP URL (`https://host/<name>_CEP_Certificate/service.svc/CEP`)' -r
complete -c renew -n "__fish_renew_using_subcommand policy" -l ca-cert -d 'The CA certificates to trust (PEM bundle)' -r -F
complete -c renew -n "__fish_renew_using_subcommand policy" -l json -d 'Print the outcome as JSON on stdout'
complete -c renew -n "__fish_renew_using_subcommand policy" -l attest -d 'Attach the card\'s attestation of the new key to the request (a YubiKey\'s PIV attestation, in the PKCS#10 attribute of draft-ietf-lamps-csr-attestation), for a CA that renews only keys proven generated on the card. A card that cannot attest ends the attempt before anything is sent'
complete -c renew -n "__fish_renew_using_subcommand policy" -l implicit-confirm -d 'With `--mode cmp`: ask the CA to skip the confirmation (`implicitConfirm`, RFC 4210 §5.1.1.1). A CA that grants it ends the exchange with the certificate; one that does not gets the usual `certConf`. Without it the client always confirms (or rejects) what it received'
complete -c renew -n "__fish_renew_using_subcommand policy" -s h -l help -d 'Print help'
complete -c renew -n "__fish_renew_using_subcommand status" -l token -d '`sim:CARD.json` (the virtual card, in-process), `piv-pcsc[:READER]` (a PIV card in a PC/SC reader; feature `pcsc`) or `pkcs11:MODULE[:LABEL]` (a PKCS#11 token; feature `pkcs11`)' -r
complete -c renew -n "__fish_renew_using_subcommand status" -l container -d 'The container holding the certificate to renew' -r
complete -c renew -n "__fish_renew_using_subcommand status" -l pin-env -d 'Read the PIN from this environment variable (default: ask on the terminal)' -r
complete -c renew -n "__fish_renew_using_subcommand status" -l pin-fd -d 'Read the PIN from this file descriptor' -r
complete -c renew -n "__fish_renew_using_subcommand status" -l pin-file -d 'Read the PIN from the first line of this file (mode 0600 or stricter)' -r -F
complete -c renew -n "__fish_renew_using_subcommand status" -l pinentry -d 'Ask through this pinentry program (e.g. /usr/bin/pinentry-tty, pinentry-gnome3)' -r -F
complete -c renew -n "__fish_renew_using_subcommand status" -l management-key -d 'PIV management key: hex (32 digits AES-128, 48 AES-192 or 3DES, 64 AES-256; the card says which algorithm, or prefix `3des:`/`aes128:`/`aes192:`/`aes256:`), `pin-protected` (stored on the card under the PIN, as ykman\'s --protect leaves it) or `auto` (default: the PIN-protected key when the card has one, else the factory key)' -r
complete -c renew -n "__fish_renew_using_subcommand status" -l journal -d 'Journal file (default: ~/.cardrenew/journal-<card>-<container>.jsonl, one per card)' -r -F
complete -c renew -n "__fish_renew_using_subcommand status" -l retries -d 'Re-sends of the same request when its answer is lost (connection dropped, timeout, truncated answer, HTTP 5xx), waiting 2, 4, 8, 16 s (or the server\'s Retry-After, at most 30 s) before rolling back; 0 rolls back at once' -r
complete -c renew -n "__fish_renew_using_subcommand status" -l json -d 'Print the outcome as JSON on stdout'
complete -c renew -n "__fish_renew_using_subcommand status" -l attest -d 'Attach the card\'s attestation of the new key to the request (a YubiKey\'s PIV attestation, in the PKCS#10 attribute of draft-ietf-lamps-csr-attestation), for a CA that renews only keys proven generated on the card. A card that cannot attest ends the attempt before anything is sent'
complete -c renew -n "__fish_renew_using_subcommand status" -l implicit-confirm -d 'With `--mode cmp`: ask the CA to skip the confirmation (`implicitConfirm`, RFC 4210 §5.1.1.1). A CA that grants it ends the exchange with the certificate; one that does not gets the usual `certConf`. Without it the client always confirms (or rejects) what it received'
complete -c renew -n "__fish_renew_using_subcommand status" -s h -l help -d 'Print help'
complete -c renew -n "__fish_renew_using_subcommand resume" -l token -d '`sim:CARD.json` (the virtual card, in-process), `piv-pcsc[:READER]` (a PIV card in a PC/SC reader; feature `pcsc`) or `pkcs11:MODULE[:LABEL]` (a PKCS#11 token; feature `pkcs11`)' -r
complete -c renew -n "__fish_renew_using_subcommand resume" -l container -d 'The container holding the certificate to renew' -r
complete -c renew -n "__fish_renew_using_subcommand resume" -l pin-env -d 'Read the PIN from this environment variable (default: ask on the terminal)' -r
complete -c renew -n "__fish_renew_using_subcommand resume" -l pin-fd -d 'Read the PIN from this file descriptor' -r
complete -c renew -n "__fish_renew_using_subcommand resume" -l pin-file -d 'Read the PIN from the first line of this file (mode 0600 or stricter)' -r -F
complete -c renew -n "__fish_renew_using_subcommand resume" -l pinentry -d 'Ask through this pinentry program (e.g. /usr/bin/pinentry-tty, pinentry-gnome3)' -r -F
complete -c renew -n "__fish_renew_using_subcommand resume" -l management-key -d 'PIV management key: hex (32 digits AES-128, 48 AES-192 or 3DES, 64 AES-256; the card says which algorithm, or prefix `3des:`/`aes128:`/`aes192:`/`aes256:`), `pin-protected` (stored on the card under the PIN, as ykman\'s --protect leaves it) or `auto` (default: the PIN-protected key when the card has one, else the factory key)' -r
complete -c renew -n "__fish_renew_using_subcommand resume" -l journal -d 'Journal file (default: ~/.cardrenew/journal-<card>-<container>.jsonl, one per card)' -r -F
complete -c renew -n "__fish_renew_using_subcommand resume" -l retries -d 'Re-sends of the same request when its answer is lost (connection dropped, timeout, truncated answer, HTTP 5xx), waiting 2, 4, 8, 16 s (or the server\'s Retry-After, at most 30 s) before rolling back; 0 rolls back at once' -r
complete -c renew -n "__fish_renew_using_subcommand resume" -l ca -d 'CA base URL' -r
complete -c renew -n "__fish_renew_using_subcommand resume" -l ca-cert -d 'The CA certificates to trust (PEM bundle)' -r -F
complete -c renew -n "__fish_renew_using_subcommand resume" -l max-polls -d 'How many times to poll (none when the CA asks to come back in more than an hour)' -r
complete -c renew -n "__fish_renew_using_subcommand resume" -l json -d 'Print the outcome as JSON on stdout'
complete -c renew -n "__fish_renew_using_subcommand resume" -l attest -d 'Attach the card\'s attestation of the new key to the request (a YubiKey\'s PIV attestation, in the PKCS#10 attribute of draft-ietf-lamps-csr-attestation), for a CA that renews only keys proven generated on the card. A card that cannot attest ends the attempt before anything is sent'
complete -c renew -n "__fish_renew_using_subcommand resume" -l implicit-confirm -d 'With `--mode cmp`: ask the CA to skip the confirmation (`implicitConfirm`, RFC 4210 §5.1.1.1). A CA that grants it ends the exchange with the certificate; one that does not gets the usual `certConf`. Without it the client always confirms (or rejects) what it received'
complete -c renew -n "__fish_renew_using_subcommand resume" -s h -l help -d 'Print help'
complete -c renew -n "__fish_renew_using_subcommand recover" -l token -d '`sim:CARD.json` (the virtual card, in-process), `piv-pcsc[:READER]` (a PIV card in a PC/SC reader; feature `pcsc`) or `pkcs11:MODULE[:LABEL]` (a PKCS#11 token; feature `pkcs11`)' -r
complete -c renew -n "__fish_renew_using_subcommand recover" -l container -d 'The container holding the certificate to renew' -r
complete -c renew -n "__fish_renew_using_subcommand recover" -l pin-env -d 'Read the PIN from this environment variable (default: ask on the terminal)' -r
complete -c renew -n "__fish_renew_using_subcommand recover" -l pin-fd -d 'Read the PIN from this file descriptor' -r
complete -c renew -n "__fish_renew_using_subcommand recover" -l pin-file -d 'Read the PIN from the first line of this file (mode 0600 or stricter)' -r -F
complete -c renew -n "__fish_renew_using_subcommand recover" -l pinentry -d 'Ask through this pinentry program (e.g. /usr/bin/pinentry-tty, pinentry-gnome3)' -r -F
complete -c renew -n "__fish_renew_using_subcommand recover" -l management-key -d 'PIV management key: hex (32 digits AES-128, 48 AES-192 or 3DES, 64 AES-256; the card says which algorithm, or prefix `3des:`/`aes128:`/`aes192:`/`aes256:`), `pin-protected` (stored on the card under the PIN, as ykman\'s --protect leaves it) or `auto` (default: the PIN-protected key when the card has one, else the factory key)' -r
complete -c renew -n "__fish_renew_using_subcommand recover" -l journal -d 'Journal file (default: ~/.cardrenew/journal-<card>-<container>.jsonl, one per card)' -r -F
complete -c renew -n "__fish_renew_using_subcommand recover" -l retries -d 'Re-sends of the same request when its answer is lost (connection dropped, timeout, truncated answer, HTTP 5xx), waiting 2, 4, 8, 16 s (or the server\'s Retry-After, at most 30 s) before rolling back; 0 rolls back at once' -r
complete -c renew -n "__fish_renew_using_subcommand recover" -l json -d 'Print the outcome as JSON on stdout'
complete -c renew -n "__fish_renew_using_subcommand recover" -l attest -d 'Attach the card\'s attestation of the new key to the request (a YubiKey\'s PIV attestation, in the PKCS#10 attribute of draft-ietf-lamps-csr-attestation), for a CA that renews only keys proven generated on the card. A card that cannot attest ends the attempt before anything is sent'
complete -c renew -n "__fish_renew_using_subcommand recover" -l implicit-confirm -d 'With `--mode cmp`: ask the CA to skip the confirmation (`implicitConfirm`, RFC 4210 §5.1.1.1). A CA that grants it ends the exchange with the certificate; one that does not gets the usual `certConf`. Without it the client always confirms (or rejects) what it received'
complete -c renew -n "__fish_renew_using_subcommand recover" -s h -l help -d 'Print help'
complete -c renew -n "__fish_renew_using_subcommand check" -l config -d 'The agent\'s configuration file (TOML; see the README)' -r -F
complete -c renew -n "__fish_renew_using_subcommand check" -l now -d 'Act as if it were this time: Unix seconds, or `+DURATION` from now (`+200d`): what would the agent do then?' -r
complete -c renew -n "__fish_renew_using_subcommand check" -l abort-after -d 'Test hook: abort the process (as a kill would stop it) right after the journal record of this kind is written (`generated`, `install-intent`, ...)' -r
complete -c renew -n "__fish_renew_using_subcommand check" -l retry -d 'Try again now: entries waiting after a failure, and those stuck on a refused PIN (never retried otherwise)'
complete -c renew -n "__fish_renew_using_subcommand check" -s h -l help -d 'Print help'
complete -c renew -n "__fish_renew_using_subcommand agent; and not __fish_seen_subcommand_from status help" -l config -d 'The agent\'s configuration file (TOML; see the README)' -r -F
complete -c renew -n "__fish_renew_using_subcommand agent; and not __fish_seen_subcommand_from status help" -l now -d 'Run with the clock ahead by `+DURATION` (testing and dry runs)' -r
complete -c renew -n "__fish_renew_using_subcommand agent; and not __fish_seen_subcommand_from status help" -s h -l help -d 'Print help'
complete -c renew -n "__fish_renew_using_subcommand agent; and not __fish_seen_subcommand_from status help" -f -a "status" -d 'Each tracked certificate: state, notAfter, next action and its time, last error'
complete -c renew -n "__fish_renew_using_subcommand agent; and not __fish_seen_subcommand_from status help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c renew -n "__fish_renew_using_subcommand agent; and __fish_seen_subcommand_from status" -l config -d 'The agent\'s configuration file' -r -F
complete -c renew -n "__fish_renew_using_subcommand agent; and __fish_seen_subcommand_from status" -l json -d 'JSON instead of the table'
complete -c renew -n "__fish_renew_using_subcommand agent; and __fish_seen_subcommand_from status" -s h -l help -d 'Print help'
complete -c renew -n "__fish_renew_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "status" -d 'Each tracked certificate: state, notAfter, next action and its time, last error'
complete -c renew -n "__fish_renew_using_subcommand agent; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c renew -n "__fish_renew_using_subcommand sample" -l out-dir -d 'Directory to write ca.pem, old.pem, old.key, new.key, request.der into' -r -F
complete -c renew -n "__fish_renew_using_subcommand sample" -l kind -d 'Key type of the certificate and the new key' -r -f -a "p256\t''
rsa2048\t''"
complete -c renew -n "__fish_renew_using_subcommand sample" -l deterministic -d 'Use the fixed test keys and clock (reproducible bytes)'
complete -c renew -n "__fish_renew_using_subcommand sample" -s h -l help -d 'Print help'
complete -c renew -n "__fish_renew_using_subcommand help; and not __fish_seen_subcommand_from inspect build-request run policy status resume recover check agent sample help" -f -a "inspect" -d 'Print a readable tree of a CMC request or response, CMS-with-PKCS#10, certs-only PKCS#7, PKCS#10 or certificate (DER, PEM or base64; `-` reads stdin). Signatures are checked'
complete -c renew -n "__fish_renew_using_subcommand help; and not __fish_seen_subcommand_from inspect build-request run policy status resume recover check agent sample help" -f -a "build-request" -d 'Build a CMC renewal request with software keys (for interop testing)'
complete -c renew -n "__fish_renew_using_subcommand help; and not __fish_seen_subcommand_from inspect build-request run policy status resume recover check agent sample help" -f -a "run" -d 'Renew the certificate in a token\'s container against a CA'
complete -c renew -n "__fish_renew_using_subcommand help; and not __fish_seen_subcommand_from inspect build-request run policy status resume recover check agent sample help" -f -a "policy" -d 'Ask an MS-XCEP policy service (CEP) for its templates and enrollment services, over the card-authenticated TLS'
complete -c renew -n "__fish_renew_using_subcommand help; and not __fish_seen_subcommand_from inspect build-request run policy status resume recover check agent sample help" -f -a "status" -d 'Show the token\'s containers and the journal\'s state'
complete -c renew -n "__fish_renew_using_subcommand help; and not __fish_seen_subcommand_from inspect build-request run policy status resume recover check agent sample help" -f -a "resume" -d 'Collect a pending request (also after a restart), then install it, or roll back on denial'
complete -c renew -n "__fish_renew_using_subcommand help; and not __fish_seen_subcommand_from inspect build-request run policy status resume recover check agent sample help" -f -a "recover" -d 'After a crash at any point: restore exactly one valid certificate and no orphan container'
complete -c renew -n "__fish_renew_using_subcommand help; and not __fish_seen_subcommand_from inspect build-request run policy status resume recover check agent sample help" -f -a "check" -d 'Renew every tracked certificate that is due, once (for cron and systemd timers). Exit code: 0 nothing due, 10 renewed, 3 pending at the CA, 4 failed or stuck (refused, CA unreachable, card absent; see `renew agent status`), 1 configuration unusable'
complete -c renew -n "__fish_renew_using_subcommand help; and not __fish_seen_subcommand_from inspect build-request run policy status resume recover check agent sample help" -f -a "agent" -d 'Keep the tracked certificates renewed (long-running; `renew agent status` shows where each stands)'
complete -c renew -n "__fish_renew_using_subcommand help; and not __fish_seen_subcommand_from inspect build-request run policy status resume recover check agent sample help" -f -a "sample" -d 'Create a throwaway CA, a certificate to renew and keys in DIR, build a renewal request for it and inspect it (the quick-start demo)'
complete -c renew -n "__fish_renew_using_subcommand help; and not __fish_seen_subcommand_from inspect build-request run policy status resume recover check agent sample help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c renew -n "__fish_renew_using_subcommand help; and __fish_seen_subcommand_from agent" -f -a "status" -d 'Each tracked certificate: state, notAfter, next action and its time, last error'
