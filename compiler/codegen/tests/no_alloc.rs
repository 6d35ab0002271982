//! A compiled training step allocates nothing after its first run.
//!
//! A counting global allocator wraps the system one; after a warm-up run (which starts
//! the kernel threads), five runs of the MNIST training steps — new inputs copied in,
//! the step executed, the loss read — must not allocate or free a single block, on one
//! thread and on two; nor must five batches of the GAN's two-step plan, whose steps
//! share one state store.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use dnnc_sema::RootDatabase;
use dnnc_session::steps::{train_step, PassOptions};
use dnnc_tensor::{DType, Data, Tensor};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::SeqCst);
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counter is global: the tests take turns.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn the_training_step_allocates_nothing_after_warm_up() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    check("mnist_mlp.dnn", 128, &[784]);
    // Convolutions (patches, fold, their matmuls) and pooling.
    check("mnist_cnn.dnn", 64, &[28, 28]);
}

/// Five training steps of `example` at `batch` (images of `dims`) allocate nothing
/// after the first, on one thread and on two.
fn check(example: &str, batch: usize, dims: &[usize]) {
    let db = RootDatabase::new();
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(example);
    let src = db.open(&path).unwrap();
    let job = dnnc_session::job(&db, src).unwrap();
    let opts = PassOptions {
        verify: true,
        dump_after: None,
        precision: None,
        int8: Vec::new(),
    };
    let step = train_step(job.db, job.file, job.item, &job.cfg, 0, 63, batch, &opts).unwrap();
    let g = step.graph;
    let mut c = dnnc_codegen::compile(&g).unwrap();
    for p in &step.params {
        let n: usize = p.shape.iter().product();
        let v = (0..n).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
        c.set_state(&p.name, &Tensor::f32(p.shape.clone(), v).unwrap())
            .unwrap();
    }
    let mut shape = vec![batch];
    shape.extend(dims);
    let n: usize = shape.iter().product();
    let image = Tensor::f32(shape, (0..n).map(|i| (i % 255) as f32 / 255.0).collect()).unwrap();
    let label = Tensor::new(
        DType::U8,
        vec![batch],
        Data::U8((0..batch).map(|i| (i % 10) as u8).collect()),
    )
    .unwrap();
    for threads in [1, 2] {
        dnnc_codegen::set_threads(threads);
        let run = |c: &mut dnnc_codegen::Compiled, _k: i64| {
            c.set_input("image", &image).unwrap();
            c.set_input("label", &label).unwrap();
            c.execute().unwrap();
            c.output_scalar(0).unwrap()
        };
        run(&mut c, 0);
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        let mut losses = [0.0; 5];
        for (k, l) in losses.iter_mut().enumerate() {
            *l = run(&mut c, k as i64 + 1);
        }
        let after = ALLOCATIONS.load(Ordering::SeqCst);
        assert_eq!(
            after - before,
            0,
            "{example}, {threads} thread(s): five training steps allocated or freed {} times",
            after - before
        );
        assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    }
}

/// The two steps of the GAN example, compiled against one state store: each batch
/// runs the critic's step and the generator's, which share the critic's and the
/// generator's weights in place (the generator step reads the critic the critic step
/// just updated). Five batches allocate nothing after the first, and the store's
/// states move, so the steps do write the shared memory.
#[test]
fn a_two_step_plan_shares_its_store_and_allocates_nothing() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let db = RootDatabase::new();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/mnist_gan.dnn");
    let src = db.open(&path).unwrap();
    let job = dnnc_session::job(&db, src).unwrap();
    let opts = PassOptions {
        verify: true,
        dump_after: None,
        precision: None,
        int8: Vec::new(),
    };
    let batch = 64;
    let store = dnnc_exec::Store::new();
    let mut steps = Vec::new();
    for s in 0..2 {
        let l = train_step(job.db, job.file, job.item, &job.cfg, s, 125, batch, &opts).unwrap();
        for p in &l.params {
            let n: usize = p.shape.iter().product();
            let v = (0..n).map(|i| ((i % 17) as f32 - 8.0) * 0.01).collect();
            store
                .set(&p.name, &Tensor::f32(p.shape.clone(), v).unwrap())
                .unwrap();
        }
        steps.push(dnnc_codegen::compile_in(&l.graph, Some(&store)).unwrap());
    }
    let image = Tensor::f32(
        vec![batch, 784],
        (0..batch * 784)
            .map(|i| (i % 255) as f32 / 127.5 - 1.0)
            .collect(),
    )
    .unwrap();
    let key = Tensor::new(DType::I64, vec![], Data::I64(vec![3])).unwrap();
    let before_d = store.get("D.fc1.W").unwrap();
    let before_g = store.get("G.out.W").unwrap();
    for threads in [1, 2] {
        dnnc_codegen::set_threads(threads);
        let run = |steps: &mut Vec<dnnc_codegen::Compiled>| {
            let mut losses = [0.0; 2];
            for (c, l) in steps.iter_mut().zip(&mut losses) {
                if c.has_input("image") {
                    c.set_input("image", &image).unwrap();
                }
                c.set_input(dnnc_ir::Port::RngKey.name(), &key).unwrap();
                c.execute().unwrap();
                *l = c.output_scalar(0).unwrap();
            }
            losses
        };
        run(&mut steps);
        let before = ALLOCATIONS.load(Ordering::SeqCst);
        let mut losses = [[0.0; 2]; 5];
        for l in losses.iter_mut() {
            *l = run(&mut steps);
        }
        let after = ALLOCATIONS.load(Ordering::SeqCst);
        assert_eq!(
            after - before,
            0,
            "{threads} thread(s): five GAN batches allocated or freed {} times",
            after - before
        );
        assert!(losses.iter().flatten().all(|l| l.is_finite()), "{losses:?}");
    }
    assert_ne!(store.get("D.fc1.W").unwrap(), before_d);
    assert_ne!(store.get("G.out.W").unwrap(), before_g);
    assert_eq!(
        store.get("opt.critic.step").unwrap().data.to_i64_vec(),
        vec![12]
    );
}
