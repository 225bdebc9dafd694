//! NumPy files written by NumPy (`scripts/make_numpy_fixtures.py`) read with their values,
//! shapes and Ember's dtypes; pickled object arrays and hostile files are errors, no panic.

use std::path::PathBuf;
use std::time::Duration;

use ember_core::DType;
use ember_testing::hostile::Hostile;
use ember_weights::{read_npy, read_npz};

fn numpy(name: &str) -> PathBuf {
    ember_testing::fixtures_dir().join("numpy").join(name)
}

#[test]
fn numpy_files_read_with_their_values() {
    let t = read_npy(numpy("f32_c.npy")).unwrap();
    assert_eq!((t.dims(), t.dtype()), (&[3, 4][..], DType::F32));
    assert_eq!(
        t.to_vec::<f32>().unwrap(),
        (0..12).map(|i| i as f32).collect::<Vec<_>>()
    );
    // Fortran order: the same values at the same indices (row-major read-back).
    let t = read_npy(numpy("f64_fortran.npy")).unwrap();
    assert_eq!(t.dims(), &[2, 3]);
    assert_eq!(
        t.to_vec::<f64>().unwrap(),
        vec![0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    );
    let t = read_npy(numpy("f16.npy")).unwrap();
    assert_eq!(t.dtype(), DType::F16);
    let f: Vec<f32> = t.to_dtype(DType::F32).unwrap().to_vec().unwrap();
    assert_eq!(f, vec![0.0, 0.25, 0.5, 0.75]);
    let t = read_npy(numpy("f4_big_endian.npy")).unwrap();
    assert_eq!(t.to_vec::<f32>().unwrap(), vec![0.0, 1.0, 2.0]);
    // Integers of any width become I64.
    let t = read_npy(numpy("i32.npy")).unwrap();
    assert_eq!(
        (t.dtype(), t.to_vec::<i64>().unwrap()),
        (DType::I64, vec![-3, -2, -1, 0, 1, 2])
    );
    assert_eq!(
        read_npy(numpy("u8.npy")).unwrap().to_vec::<i64>().unwrap(),
        vec![0, 1, 2, 3, 4]
    );
    let t = read_npy(numpy("i64_3d.npy")).unwrap();
    assert_eq!(t.dims(), &[2, 3, 4]);
    assert_eq!(t.to_vec::<i64>().unwrap(), (0..24).collect::<Vec<i64>>());
    let t = read_npy(numpy("bool.npy")).unwrap();
    assert_eq!(t.to_vec::<bool>().unwrap(), vec![true, false, true]);
    for archive in ["arrays.npz", "compressed.npz"] {
        let arrays = read_npz(numpy(archive)).unwrap();
        let names: Vec<&str> = arrays.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["x", "y"], "{archive}");
        assert_eq!(
            arrays[0].1.to_vec::<f32>().unwrap(),
            vec![0.0, 1.0, 2.0, 3.0]
        );
        assert_eq!(arrays[1].1.dims(), &[2, 2]);
        assert_eq!(arrays[1].1.to_vec::<i64>().unwrap(), vec![1, 2, 3, 4]);
    }
}

/// An `.npy` file with `header` (padded as NumPy pads it) and `data` after it.
fn npy_bytes(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0x93, b'N', b'U', b'M', b'P', b'Y', version, 0];
    let text = format!("{header}\n");
    match version {
        1 => b.extend((text.len() as u16).to_le_bytes()),
        _ => b.extend((text.len() as u32).to_le_bytes()),
    }
    b.extend(text.as_bytes());
    b.extend(data);
    b
}

#[test]
fn hostile_numpy_files_are_errors() {
    let dir = std::env::temp_dir().join(format!("ember-npy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let f32_header =
        |shape: &str| format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    let mut h = Hostile::new("hostile numpy files", Duration::from_secs(1), 256.0);
    h.err("a pickled object array", || read_npy(numpy("object.npy")));
    h.err("empty file", || read_npy(write("empty.npy", b"")));
    h.err("no magic", || {
        read_npy(write("magic.npy", b"PK\x03\x04 not numpy at all"))
    });
    h.err("version 9", || {
        read_npy(write("v9.npy", &npy_bytes(9, &f32_header("(1,)"), &[0; 4])))
    });
    let huge_header = {
        let mut b = npy_bytes(2, &f32_header("(1,)"), &[0; 4]);
        b[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        b
    };
    h.err("a header of 4 GiB declared", || {
        read_npy(write("huge-header.npy", &huge_header))
    });
    h.err("data shorter than the shape", || {
        read_npy(write(
            "short.npy",
            &npy_bytes(1, &f32_header("(1000000, 1000)"), &[0; 16]),
        ))
    });
    h.err("a shape overflowing 64 bits", || {
        let shape = "(4294967296, 4294967296, 4294967296)";
        read_npy(write(
            "overflow.npy",
            &npy_bytes(1, &f32_header(shape), &[0; 16]),
        ))
    });
    h.err("a header nested 5000 deep", || {
        let nested = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
        read_npy(write(
            "nested.npy",
            &npy_bytes(2, &f32_header(&nested), &[0; 4]),
        ))
    });
    h.err("a header that is not a dict", || {
        read_npy(write("list.npy", &npy_bytes(1, "[1, 2, 3]", &[])))
    });
    h.err("a dtype Ember has no match for", || {
        let header = "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }";
        read_npy(write("complex.npy", &npy_bytes(1, header, &[0; 8])))
    });
    h.err("a bool array holding 7", || {
        let header = "{'descr': '|b1', 'fortran_order': False, 'shape': (2,), }";
        read_npy(write("bool7.npy", &npy_bytes(1, header, &[1, 7])))
    });
    h.err("zero elements", || {
        read_npy(write("zero.npy", &npy_bytes(1, &f32_header("(0, 3)"), &[])))
    });
    h.err("an .npz that is not a zip", || {
        read_npz(write("bad.npz", b"\x93NUMPY not a zip"))
    });
    h.err("an .npz cut in half", || {
        let whole = std::fs::read(numpy("compressed.npz")).unwrap();
        read_npz(write("cut.npz", &whole[..whole.len() / 2]))
    });
    h.ok("the smallest valid file", || {
        read_npy(write("ok.npy", &npy_bytes(1, &f32_header("(1,)"), &[0; 4])))
    });
    h.finish();
    std::fs::remove_dir_all(&dir).unwrap();
}
