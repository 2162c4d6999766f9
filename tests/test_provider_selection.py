from producers import ProviderSelector


def test_provider_selection_adapts():
    selector = ProviderSelector()
    speed_requests = [{"prompt": "Quick test", "priority": "speed"} for _ in range(20)]
    providers_used = []
    for request in speed_requests:
        provider = selector.select_provider(request)
        providers_used.append(provider)
        if provider == "llama":
            metrics = {"quality": 0.7, "cost": 0.0, "latency": 0.1}
        else:
            metrics = {"quality": 0.9, "cost": 0.5, "latency": 0.5}
        selector.update_from_response(request, provider, metrics)
    last_10_selections = providers_used[-10:]
    assert last_10_selections.count("llama") / 10 > 0.6
