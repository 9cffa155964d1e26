# bash completion for berth
_berth() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  if [ "$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=($(compgen -W "serve check reload status units version help" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -X '!*.hcl' -- "$cur") $(compgen -d -- "$cur"))
  fi
}
complete -o filenames -F _berth berth
