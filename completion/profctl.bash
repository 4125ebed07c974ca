# profctl.bash -- bash completion for profctl(1): commands, each command's
# flags and their fixed values.  Installed as
# $(PREFIX)/share/bash-completion/completions/profctl; for a try:
# `source completion/profctl.bash`.  Keep in step with `profctl CMD --help`.

_profctl()
{
	local cur prev words cword cmd i
	if declare -F _init_completion >/dev/null; then
		_init_completion || return
	else
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD-1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi

	local commands="status start stop show flamegraph ps reset reload help"
	local global="-r --runtime-dir -h --help -V --version"
	local filters="--since --until --pid --service --thread --oncpu --mode"

	cmd=""
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-r|--runtime-dir) ((i++)) ;;
		-*) ;;
		*) cmd=${words[i]}; break ;;
		esac
	done

	case $prev in
	-r|--runtime-dir)
		COMPREPLY=($(compgen -d -- "$cur")); return ;;
	-o|--output)
		COMPREPLY=($(compgen -f -- "$cur")); return ;;
	-f|--format)
		case $cmd in
		status|ps) COMPREPLY=($(compgen -W "table json" -- "$cur")) ;;
		*) COMPREPLY=($(compgen -W "table json folded speedscope pprof svg" -- "$cur")) ;;
		esac
		return ;;
	-m|--mode)
		COMPREPLY=($(compgen -W "wall cpu gil" -- "$cur")); return ;;
	--reader)
		COMPREPLY=($(compgen -W "gil direct default" -- "$cur")); return ;;
	-b|--by)
		COMPREPLY=($(compgen -W "function line file thread process service" -- "$cur")); return ;;
	-w|--weight)
		COMPREPLY=($(compgen -W "samples time" -- "$cur")); return ;;
	--root)
		COMPREPLY=($(compgen -W "pid thread" -- "$cur")); return ;;
	-p|--pid|--base-pid)
		COMPREPLY=($(compgen -W "$(profctl ps --flat --format json 2>/dev/null |
		    grep -o '"pid": *[0-9]*' | grep -o '[0-9]*$')" -- "$cur"))
		return ;;
	--rate|--jitter|--max-overhead|-s|--since|-u|--until|-S|--service|-t|--thread|\
	--depth|--min-percent|-n|--top|--base-since|--base-until|\
	--base-service|--base-thread)
		return ;;
	esac

	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$global" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$commands" -- "$cur"))
		fi
		return
	fi

	local flags="-h --help -r --runtime-dir"
	case $cmd in
	status) flags+=" -f --format" ;;
	start) flags+=" --rate -p --pid -m --mode --reader --jitter --max-overhead" ;;
	stop) flags+=" -p --pid" ;;
	show) flags+=" $filters -b --by --tree --depth --min-percent --diff
	    --base-since --base-until --base-pid --base-service --base-thread
	    -n --top -f --format -w --weight --root -o --output" ;;
	flamegraph) flags+=" $filters -o --output -w --weight -n --top" ;;
	ps) flags+=" -p --pid -S --service --flat -f --format" ;;
	reset|reload) ;;
	help)
		COMPREPLY=($(compgen -W "$commands" -- "$cur")); return ;;
	esac
	COMPREPLY=($(compgen -W "$flags" -- "$cur"))
}
complete -F _profctl profctl
