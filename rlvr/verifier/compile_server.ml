(* The verifier's compile server: `ocamlc` without its start-up cost.

   A long-lived process, linked with compiler-libs, started by rlvr/verifier/compile_server.py inside
   the same sandbox as a per-process `ocamlc` (bubblewrap, rlimits, one writable job directory as its
   working directory). For each job it forks; the child runs the real driver,
   `Maindriver.main argv Format.err_formatter` -- exactly what ocamlc.opt's main does -- with stdout
   and stderr sent to files, and exits with the driver's status. So every job starts from the same
   pristine compiler state (no flag, type-variable counter or persistent-module cache leaks from one
   job to the next), a compiler that overflows its stack or runs out of memory takes only its child
   down, and the output is byte for byte what ocamlc prints. What a job saves is the exec of an
   8.8 MB binary, its dynamic linking and the compiler's module initialisation.

   Protocol, one job at a time, on stdin/stdout:
     server -> "ready <protocol> <ocaml version> <standard library>\n" once, at start-up
     client -> "job <deadline ms> <output cap bytes> <argc>\n" then argc lines, one argument each
     server -> "done <exit|signal|timeout> <code> <stdout size> <stderr size> <n1> <n2>\n"
               then the first n1 bytes of stdout and the first n2 bytes of stderr (n <= cap)
   A child still running at the deadline is killed (status "timeout"). argv[1] is a directory for
   the captured output (the sandbox's private tmpfs). *)

let protocol = "1"

let read_job () =
  match input_line stdin with
  | exception End_of_file -> None
  | line -> (
      match String.split_on_char ' ' (String.trim line) with
      | [ "job"; deadline_ms; cap; argc ] ->
          let argv = Array.init (int_of_string argc) (fun _ -> input_line stdin) in
          Some (float_of_string deadline_ms /. 1000., int_of_string cap, argv)
      | _ -> failwith ("compile server: bad request " ^ String.escaped line))

(* The first [cap] bytes of a file, and its size. *)
let slurp path cap =
  match open_in_bin path with
  | exception Sys_error _ -> ("", 0)
  | ic ->
      let size = in_channel_length ic in
      let s = really_input_string ic (min size cap) in
      close_in ic;
      (s, size)

(* Wait for the child until [deadline] seconds from now, via the pipe whose write end only the child
   holds: it reads end-of-file when the child has exited. *)
let wait_child pid death_r deadline =
  let until = Unix.gettimeofday () +. deadline in
  let rec poll () =
    let left = until -. Unix.gettimeofday () in
    if left <= 0. then false
    else
      match Unix.select [ death_r ] [] [] left with
      | [], _, _ -> poll ()
      | _ -> true
      | exception Unix.Unix_error (Unix.EINTR, _, _) -> poll ()
  in
  let exited = poll () in
  if not exited then (try Unix.kill pid Sys.sigkill with Unix.Unix_error _ -> ());
  let rec reap () =
    match Unix.waitpid [] pid with
    | _, st -> st
    | exception Unix.Unix_error (Unix.EINTR, _, _) -> reap ()
  in
  let st = reap () in
  if not exited then ("timeout", 0)
  else
    match st with
    | Unix.WEXITED c -> ("exit", c)
    | Unix.WSIGNALED s -> ("signal", s)
    | Unix.WSTOPPED s -> ("signal", s)

let run_child argv out_path err_path =
  let redirect path fd =
    let f = Unix.openfile path [ Unix.O_WRONLY; Unix.O_CREAT; Unix.O_TRUNC ] 0o600 in
    Unix.dup2 f fd;
    Unix.close f
  in
  let null = Unix.openfile "/dev/null" [ Unix.O_RDONLY ] 0 in
  Unix.dup2 null Unix.stdin;
  Unix.close null;
  redirect out_path Unix.stdout;
  redirect err_path Unix.stderr;
  exit (Maindriver.main argv Format.err_formatter)

let () =
  let scratch = Sys.argv.(1) in
  let out_path = Filename.concat scratch "stdout" and err_path = Filename.concat scratch "stderr" in
  (* The protocol goes through a copy of stdout, so nothing a child prints can reach the client. *)
  let proto_fd = Unix.dup Unix.stdout in
  let proto = Unix.out_channel_of_descr proto_fd in
  Printf.fprintf proto "ready %s %s %s\n%!" protocol Sys.ocaml_version Config.standard_library;
  let rec loop () =
    match read_job () with
    | None -> ()
    | Some (deadline, cap, argv) ->
        let death_r, death_w = Unix.pipe ~cloexec:true () in
        flush_all ();
        (match Unix.fork () with
        | 0 ->
            Unix.close death_r;
            Unix.close proto_fd;
            run_child argv out_path err_path
        | pid ->
            Unix.close death_w;
            let status, code = wait_child pid death_r deadline in
            Unix.close death_r;
            let out, out_size = slurp out_path cap and err, err_size = slurp err_path cap in
            Printf.fprintf proto "done %s %d %d %d %d %d\n%s%s%!" status code out_size err_size
              (String.length out) (String.length err) out err);
        loop ()
  in
  loop ()
