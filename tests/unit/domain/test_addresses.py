"""auto_address: a loopback address of its own per forward."""



def test_auto_address_is_a_stable_loopback_address_of_its_own() -> None:
    import ipaddress
    from tray.domain.addresses import auto_address

    first = auto_address("kind-dev", "demo", "postgres")
    assert first == auto_address("kind-dev", "demo", "postgres")  # the same on every run
    ip = ipaddress.ip_address(first)
    assert ip.is_loopback and not first.startswith("127.0.0.") and not first.endswith((".0", ".255"))
    others = {auto_address(c, ns, n) for c in ("a", "b") for ns in ("demo", "prod") for n in ("postgres", "redis")}
    assert len(others) == 8  # context, namespace and name each count
    assert auto_address("a", "b", "cd") != auto_address("a", "bc", "d")  # the parts do not run together
