//! The cost of the all-reduce a data-parallel step makes: `mpirun -n 2 cargo run
//! --release -p dnnc-dist --features mpi --example allreduce [FLOATS] [ROUNDS]`
//! prints the median time of summing FLOATS `f32`s (default 269,322: the MNIST MLP's
//! parameters) over the processes.

fn main() {
    let mut args = std::env::args().skip(1);
    let floats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(269_322);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let world = match dnnc_dist::init(std::time::Duration::from_secs(60)) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let part = vec![1.0f32; floats];
    let mut sum = vec![0.0f32; floats];
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = std::time::Instant::now();
        world.sum(&part, &mut sum, "the benchmark");
        times.push(t.elapsed().as_secs_f64() * 1e6);
    }
    times.sort_by(f64::total_cmp);
    if world.is_root() {
        println!(
            "{} processes, {floats} f32 ({:.2} MB): all-reduce median {:.1} us, p10 {:.1} us, p90 {:.1} us over {rounds} rounds",
            world.size(),
            floats as f64 * 4e-6,
            times[rounds / 2],
            times[rounds / 10],
            times[rounds * 9 / 10]
        );
    }
    dnnc_dist::finalize();
}
