# bash completion for batchctl (installed by make install as
# $(PREFIX)/share/bash-completion/completions/batchctl).

_batchctl()
{
    local cur prev words cword i cmd=
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=${COMP_WORDS[COMP_CWORD-1]}

    case $prev in
    -s|--socket)
        COMPREPLY=($(compgen -f -- "$cur"))
        return
        ;;
    -t|--timeout|-n|-i|-c|-d|-k|-z|--deadline-ms|--priority|--key-prefix)
        return
        ;;
    esac
    # The command is the first word that is not an option or its value.
    for ((i = 1; i < COMP_CWORD; i++)); do
        case ${COMP_WORDS[i]} in
        -s|--socket|-t|--timeout) ((i++)) ;;
        -*) ;;
        *) cmd=${COMP_WORDS[i]}; break ;;
        esac
    done
    case $cmd in
    "")
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "-s --socket -t --timeout -V --version -h --help" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "ping load send stats health top pause resume drain reload bench" -- "$cur"))
        fi
        ;;
    load|send) COMPREPLY=($(compgen -W "--deadline-ms --priority" -- "$cur")) ;;
    stats|health) COMPREPLY=($(compgen -W "--json" -- "$cur")) ;;
    top) COMPREPLY=($(compgen -W "--once -n -i" -- "$cur")) ;;
    bench) COMPREPLY=($(compgen -W "-c -d -n -k -z --send --key-prefix --json" -- "$cur")) ;;
    esac
}
complete -F _batchctl batchctl
