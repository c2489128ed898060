def workspace(request):
    return {
        "workspace": getattr(request, "workspace", None),
        "member": getattr(request, "member", None),
        "memberships": getattr(request, "memberships", []),
    }
