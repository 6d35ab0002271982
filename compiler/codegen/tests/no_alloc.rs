//! A compiled training step allocates nothing after its first run.
//!
//! A counting global allocator wraps the system one; after a warm-up run (which starts
//! the kernel threads), five runs of the MNIST training step — new inputs copied in,
//! the step executed, the loss read — must not allocate or free a single block, on one
//! thread and on two.

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

#[test]
fn the_training_step_allocates_nothing_after_warm_up() {
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
    };
    let step = train_step(job.db, job.file, job.item, &job.cfg, 63, batch, &opts).unwrap();
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
    let mut step_no = Tensor::new(DType::I64, vec![], Data::I64(vec![0])).unwrap();
    for threads in [1, 2] {
        dnnc_codegen::set_threads(threads);
        let mut run = |c: &mut dnnc_codegen::Compiled, k: i64| {
            if let Data::I64(v) = &mut step_no.data {
                v[0] = k;
            }
            c.set_input("image", &image).unwrap();
            c.set_input("label", &label).unwrap();
            c.set_input(dnnc_ir::Port::Step.name(), &step_no).unwrap();
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
