# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_sim_card_global_optspecs
    string join \n h/help V/version
end

function __fish_sim_card_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_sim_card_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_sim_card_using_subcommand
    set -l cmd (__fish_sim_card_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c sim-card -n "__fish_sim_card_needs_command" -s h -l help -d 'Print help'
complete -c sim-card -n "__fish_sim_card_needs_command" -s V -l version -d 'Print version'
complete -c sim-card -n "__fish_sim_card_needs_command" -f -a "init" -d 'Create a fresh card (PIN 123456, PUK 12345678, management key 0102..08 as AES-192 — a YubiKey 5.7\'s factory settings — unless set)'
complete -c sim-card -n "__fish_sim_card_needs_command" -f -a "keygen" -d 'Generate a key on the card and write a PKCS#10 for it, signed on the card'
complete -c sim-card -n "__fish_sim_card_needs_command" -f -a "import-cert" -d 'Store a certificate (PEM or DER) in a slot\'s certificate object'
complete -c sim-card -n "__fish_sim_card_needs_command" -f -a "show" -d 'Print slots, certificates and PIN/PUK counters'
complete -c sim-card -n "__fish_sim_card_needs_command" -f -a "serve" -d 'Serve the card to pcscd through vsmartcard\'s vpcd until killed; changes are saved to the state file as they happen'
complete -c sim-card -n "__fish_sim_card_needs_command" -f -a "touch" -d 'Touch the key of a card served with `--touch-socket` (what a finger on the sensor does)'
complete -c sim-card -n "__fish_sim_card_needs_command" -f -a "attestation-root" -d 'Print the simulated vendor attestation root (PEM): the root every simulated card\'s F9 attestation certificate chains to, for a CA that requires attested keys. Its key is public knowledge: trust it in tests only'
complete -c sim-card -n "__fish_sim_card_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c sim-card -n "__fish_sim_card_using_subcommand init" -l state -d 'Card state file to create' -r -F
complete -c sim-card -n "__fish_sim_card_using_subcommand init" -l model -d 'The card: yubikey-5.7 (default), yubikey-5.4 (3DES management key, no MOVE/DELETE KEY, no RSA-3072/4096), piv (a plain SP 800-73-4 card: none of Yubico\'s extensions, 3DES)' -r
complete -c sim-card -n "__fish_sim_card_using_subcommand init" -l pin -d 'PIN (6-8 characters)' -r
complete -c sim-card -n "__fish_sim_card_using_subcommand init" -l puk -d 'PUK (6-8 characters)' -r
complete -c sim-card -n "__fish_sim_card_using_subcommand init" -l management-key -d 'Management key in hex (32 digits for AES-128, 48 for 3DES or AES-192, 64 for AES-256)' -r
complete -c sim-card -n "__fish_sim_card_using_subcommand init" -l management-key-algorithm -d 'Management key algorithm: aes192 (a YubiKey 5.7\'s), 3des (earlier YubiKeys and most PIV cards), aes128, aes256. Default: the model\'s factory one' -r
complete -c sim-card -n "__fish_sim_card_using_subcommand init" -l capacity -d 'How many key slots may hold keys at once' -r
complete -c sim-card -n "__fish_sim_card_using_subcommand init" -l seed -d 'RNG seed, for a reproducible card: cards with the same seed have the same serial and generate the same keys. Without it every card is a distinct one (a random seed), as two real cards are' -r
complete -c sim-card -n "__fish_sim_card_using_subcommand init" -l algorithms -d 'The key algorithms GENERATE accepts, comma-separated (default: all five), to model a card without some (`--algorithms ecc-p256,rsa2048` for an older PIV card)' -r -f -a "ecc-p256\t''
ecc-p384\t''
rsa2048\t''
rsa3072\t''
rsa4096\t''"
complete -c sim-card -n "__fish_sim_card_using_subcommand init" -l protect-management-key -d 'A random management key stored on the card under the PIN, as ykman\'s `piv access change-management-key --generate --protect` leaves it'
complete -c sim-card -n "__fish_sim_card_using_subcommand init" -l force -d 'Overwrite an existing state file'
complete -c sim-card -n "__fish_sim_card_using_subcommand init" -s h -l help -d 'Print help'
complete -c sim-card -n "__fish_sim_card_using_subcommand keygen" -l state -d 'Card state file' -r -F
complete -c sim-card -n "__fish_sim_card_using_subcommand keygen" -l slot -d 'Slot (9a, 9c, 9d, 9e, 82..95)' -r
complete -c sim-card -n "__fish_sim_card_using_subcommand keygen" -l algorithm -d 'Key algorithm' -r -f -a "ecc-p256\t''
ecc-p384\t''
rsa2048\t''
rsa3072\t''
rsa4096\t''"
complete -c sim-card -n "__fish_sim_card_using_subcommand keygen" -l csr-subject -d 'Subject of the request, e.g. "CN=Alice,O=Example"' -r
complete -c sim-card -n "__fish_sim_card_using_subcommand keygen" -l pin -d 'PIN' -r
complete -c sim-card -n "__fish_sim_card_using_subcommand keygen" -l out -d 'Where to write the PKCS#10 (PEM)' -r -F
complete -c sim-card -n "__fish_sim_card_using_subcommand keygen" -l touch-policy -d 'The key\'s touch policy: never (default), always (a touch before every use), cached (a touch counts for 15 s). Keygen itself touches the key for the PKCS#10' -r -f -a "never\t''
always\t''
cached\t''"
complete -c sim-card -n "__fish_sim_card_using_subcommand keygen" -s h -l help -d 'Print help'
complete -c sim-card -n "__fish_sim_card_using_subcommand import-cert" -l state -d 'Card state file' -r -F
complete -c sim-card -n "__fish_sim_card_using_subcommand import-cert" -l slot -d 'Slot' -r
complete -c sim-card -n "__fish_sim_card_using_subcommand import-cert" -s h -l help -d 'Print help'
complete -c sim-card -n "__fish_sim_card_using_subcommand show" -l state -d 'Card state file' -r -F
complete -c sim-card -n "__fish_sim_card_using_subcommand show" -s h -l help -d 'Print help'
complete -c sim-card -n "__fish_sim_card_using_subcommand serve" -l state -d 'Card state file' -r -F
complete -c sim-card -n "__fish_sim_card_using_subcommand serve" -l vpcd -d 'vpcd address' -r
complete -c sim-card -n "__fish_sim_card_using_subcommand serve" -l touch-socket -d 'Listen on this Unix socket for touches: each connection is one touch of the key (`sim-card touch --socket PATH`). Without it nobody touches the key, and an operation on a key that needs a touch fails after the card\'s timeout' -r -F
complete -c sim-card -n "__fish_sim_card_using_subcommand serve" -l auto-touch-ms -d 'A simulated user who touches the key this many milliseconds after the card starts waiting, every time' -r
complete -c sim-card -n "__fish_sim_card_using_subcommand serve" -s h -l help -d 'Print help'
complete -c sim-card -n "__fish_sim_card_using_subcommand touch" -l socket -d 'The card\'s touch socket' -r -F
complete -c sim-card -n "__fish_sim_card_using_subcommand touch" -s h -l help -d 'Print help'
complete -c sim-card -n "__fish_sim_card_using_subcommand attestation-root" -l out -d 'Write it here instead of standard output' -r -F
complete -c sim-card -n "__fish_sim_card_using_subcommand attestation-root" -s h -l help -d 'Print help'
complete -c sim-card -n "__fish_sim_card_using_subcommand help; and not __fish_seen_subcommand_from init keygen import-cert show serve touch attestation-root help" -f -a "init" -d 'Create a fresh card (PIN 123456, PUK 12345678, management key 0102..08 as AES-192 — a YubiKey 5.7\'s factory settings — unless set)'
complete -c sim-card -n "__fish_sim_card_using_subcommand help; and not __fish_seen_subcommand_from init keygen import-cert show serve touch attestation-root help" -f -a "keygen" -d 'Generate a key on the card and write a PKCS#10 for it, signed on the card'
complete -c sim-card -n "__fish_sim_card_using_subcommand help; and not __fish_seen_subcommand_from init keygen import-cert show serve touch attestation-root help" -f -a "import-cert" -d 'Store a certificate (PEM or DER) in a slot\'s certificate object'
complete -c sim-card -n "__fish_sim_card_using_subcommand help; and not __fish_seen_subcommand_from init keygen import-cert show serve touch attestation-root help" -f -a "show" -d 'Print slots, certificates and PIN/PUK counters'
complete -c sim-card -n "__fish_sim_card_using_subcommand help; and not __fish_seen_subcommand_from init keygen import-cert show serve touch attestation-root help" -f -a "serve" -d 'Serve the card to pcscd through vsmartcard\'s vpcd until killed; changes are saved to the state file as they happen'
complete -c sim-card -n "__fish_sim_card_using_subcommand help; and not __fish_seen_subcommand_from init keygen import-cert show serve touch attestation-root help" -f -a "touch" -d 'Touch the key of a card served with `--touch-socket` (what a finger on the sensor does)'
complete -c sim-card -n "__fish_sim_card_using_subcommand help; and not __fish_seen_subcommand_from init keygen import-cert show serve touch attestation-root help" -f -a "attestation-root" -d 'Print the simulated vendor attestation root (PEM): the root every simulated card\'s F9 attestation certificate chains to, for a CA that requires attested keys. Its key is public knowledge: trust it in tests only'
complete -c sim-card -n "__fish_sim_card_using_subcommand help; and not __fish_seen_subcommand_from init keygen import-cert show serve touch attestation-root help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
